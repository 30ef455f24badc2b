"""Failed-login throttling: counted in Redis, on our clock, never a long lockout."""

from __future__ import annotations

import asyncio

from auth_service.throttle import Limit, LoginThrottle, ThrottlePolicy
from tests.auth_service.conftest import Parts

SMALL = ThrottlePolicy(
    account_address=Limit("account-address", 3, 60),
    account=Limit("account", 5, 600),
    address=Limit("address", 4, 300),
)


def _throttle(parts: Parts, policy: ThrottlePolicy = SMALL) -> LoginThrottle:
    return LoginThrottle(parts.redis, parts.keyspace, parts.clock, policy)


async def _fail(throttle: LoginThrottle, email: str, address: str) -> None:
    """One wrong password: its reservation is kept."""
    attempt = await throttle.reserve(email, address)
    assert attempt.retry_after is None


async def test_waiting_as_told_always_ends_the_throttle(parts: Parts) -> None:
    throttle = _throttle(parts)
    for _ in range(3):
        assert await throttle.retry_after("a@example.com", "198.51.100.1") is None
        await _fail(throttle, "A@Example.com", "198.51.100.1")
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
        await _fail(throttle, "b@example.com", "203.0.113.9")
    assert await throttle.retry_after("b@example.com", "203.0.113.9") is not None
    assert await throttle.retry_after("b@example.com", "198.51.100.2") is None


async def test_the_account_wide_limit_spans_addresses_for_at_most_its_window(
    parts: Parts,
) -> None:
    throttle = _throttle(parts)
    for n in range(5):
        await _fail(throttle, "c@example.com", f"203.0.113.{n}")
    retry = await throttle.retry_after("c@example.com", "198.51.100.3")
    assert retry is not None
    assert retry <= 600
    parts.clock.advance(retry)
    assert await throttle.retry_after("c@example.com", "198.51.100.3") is None


async def test_the_address_wide_limit_spans_accounts(parts: Parts) -> None:
    throttle = _throttle(parts)
    for n in range(4):
        await _fail(throttle, f"user{n}@example.com", "203.0.113.50")
    assert await throttle.retry_after("fresh@example.com", "203.0.113.50") is not None
    assert await throttle.retry_after("fresh@example.com", "203.0.113.51") is None


async def test_a_success_forgets_failures_from_that_address_only(parts: Parts) -> None:
    throttle = _throttle(parts, ThrottlePolicy(account_address=SMALL.account_address))
    for _ in range(2):
        await _fail(throttle, "d@example.com", "198.51.100.4")
    await throttle.succeeded(await throttle.reserve("d@example.com", "198.51.100.4"))
    for _ in range(2):
        await _fail(throttle, "d@example.com", "198.51.100.4")
    assert await throttle.retry_after("d@example.com", "198.51.100.4") is None


async def test_parallel_reservations_never_pass_the_limit(parts: Parts) -> None:
    throttle = _throttle(parts)
    attempts = await asyncio.gather(
        *(throttle.reserve("e@example.com", "198.51.100.5") for _ in range(15))
    )
    allowed = [a for a in attempts if a.retry_after is None]
    assert len(allowed) == SMALL.account_address.failures
    assert all(a.retry_after and a.retry_after <= 60 for a in attempts if a not in allowed)


async def test_a_refused_attempt_is_not_counted_and_a_released_one_is_given_back(
    parts: Parts,
) -> None:
    throttle = _throttle(parts)
    attempts = [await throttle.reserve("f@example.com", "198.51.100.6") for _ in range(3)]
    assert all(a.retry_after is None for a in attempts)
    for _ in range(5):
        assert (await throttle.reserve("f@example.com", "198.51.100.6")).retry_after
    await throttle.release(attempts[0])
    # One slot again; the refusals above spent none of it, nor of the wider budgets.
    assert (await throttle.reserve("f@example.com", "198.51.100.6")).retry_after is None
    assert await throttle.retry_after("f@example.com", "198.51.100.6") is not None
    assert await throttle.retry_after("f@example.com", "198.51.100.7") is None


def test_the_default_account_limit_meets_asvs() -> None:
    account = ThrottlePolicy().account
    assert account.failures * 3600 / account.window_seconds <= 100
