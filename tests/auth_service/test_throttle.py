"""Failed-login throttling: counted in Redis, on our clock, never a long lockout."""

from __future__ import annotations

from auth_service.throttle import Limit, LoginThrottle, ThrottlePolicy
from tests.auth_service.conftest import Parts

SMALL = ThrottlePolicy(
    account_address=Limit("account-address", 3, 60),
    account=Limit("account", 5, 600),
    address=Limit("address", 4, 300),
)


def _throttle(parts: Parts, policy: ThrottlePolicy = SMALL) -> LoginThrottle:
    return LoginThrottle(parts.redis, parts.keyspace, parts.clock, policy)


async def test_waiting_as_told_always_ends_the_throttle(parts: Parts) -> None:
    throttle = _throttle(parts)
    for _ in range(3):
        assert await throttle.retry_after("a@example.com", "198.51.100.1") is None
        await throttle.record_failure("A@Example.com", "198.51.100.1")
        parts.clock.advance(10)
    # Three failures at t=0,10,20: the first leaves its 60 s window at t=60.
    assert await throttle.retry_after("a@example.com", "198.51.100.1") == 30
    # Asking again while throttled is not another failure and does not push the end back.
    parts.clock.advance(20)
    assert await throttle.retry_after("a@example.com", "198.51.100.1") == 10
    parts.clock.advance(10)
    assert await throttle.retry_after("a@example.com", "198.51.100.1") is None


async def test_the_account_address_limit_does_not_lock_the_owner_out_elsewhere(
    parts: Parts,
) -> None:
    throttle = _throttle(parts)
    for _ in range(3):
        await throttle.record_failure("b@example.com", "203.0.113.9")
    assert await throttle.retry_after("b@example.com", "203.0.113.9") is not None
    assert await throttle.retry_after("b@example.com", "198.51.100.2") is None


async def test_the_account_wide_limit_spans_addresses_for_at_most_its_window(
    parts: Parts,
) -> None:
    throttle = _throttle(parts)
    for n in range(5):
        await throttle.record_failure("c@example.com", f"203.0.113.{n}")
    retry = await throttle.retry_after("c@example.com", "198.51.100.3")
    assert retry is not None
    assert retry <= 600
    parts.clock.advance(retry)
    assert await throttle.retry_after("c@example.com", "198.51.100.3") is None


async def test_the_address_wide_limit_spans_accounts(parts: Parts) -> None:
    throttle = _throttle(parts)
    for n in range(4):
        await throttle.record_failure(f"user{n}@example.com", "203.0.113.50")
    assert await throttle.retry_after("fresh@example.com", "203.0.113.50") is not None
    assert await throttle.retry_after("fresh@example.com", "203.0.113.51") is None


async def test_a_success_forgets_failures_from_that_address_only(parts: Parts) -> None:
    throttle = _throttle(parts, ThrottlePolicy(account_address=SMALL.account_address))
    for _ in range(2):
        await throttle.record_failure("d@example.com", "198.51.100.4")
    await throttle.record_success("d@example.com", "198.51.100.4")
    for _ in range(2):
        await throttle.record_failure("d@example.com", "198.51.100.4")
    assert await throttle.retry_after("d@example.com", "198.51.100.4") is None


def test_the_default_account_limit_meets_asvs() -> None:
    account = ThrottlePolicy().account
    assert account.failures * 3600 / account.window_seconds <= 100
