"""The lease arithmetic (gateway.lease), driven by a manual clock."""

from __future__ import annotations

import pytest

from gateway.lease import Lease
from scout_kit.clock import ManualClock
from scout_kit.invalidation import held_lease_seconds, provable_expiry


def _lease(seconds: float = 1.0) -> tuple[Lease, ManualClock]:
    clock = ManualClock()
    return Lease(clock, seconds), clock


def test_no_lease_until_registered_and_answered() -> None:
    lease, clock = _lease()
    assert not lease.held()
    lease.renew(clock.monotonic())  # a PONG, but not registered
    assert not lease.held()
    lease.registered(clock.monotonic(), 5.0)
    assert not lease.held()
    lease.renew(clock.monotonic())
    assert lease.held() and lease.renewals == 1


def test_the_lease_runs_from_when_the_ping_was_sent() -> None:
    lease, clock = _lease(1.0)
    lease.registered(clock.monotonic(), 5.0)
    sent = clock.monotonic()
    clock.advance(0.4)  # the PONG took 0.4 s
    lease.renew(sent)
    clock.advance(0.59)
    assert lease.held()
    clock.advance(0.01)
    assert not lease.held()


def test_an_older_pong_never_shortens_the_lease() -> None:
    lease, clock = _lease(1.0)
    lease.registered(clock.monotonic(), 5.0)
    lease.renew(clock.monotonic())
    lease.renew(clock.monotonic() - 0.5)
    clock.advance(0.9)
    assert lease.held()
    assert lease.renewals == 1


def test_the_lease_never_outlives_the_registration() -> None:
    lease, clock = _lease(1.0)
    lease.registered(clock.monotonic(), 0.5)
    lease.renew(clock.monotonic())
    clock.advance(0.5)
    assert not lease.held()
    lease.renew(clock.monotonic())  # answered, but the registration is over
    assert not lease.held()


def test_revoking_needs_a_new_registration() -> None:
    lease, clock = _lease(1.0)
    lease.registered(clock.monotonic(), 5.0)
    lease.renew(clock.monotonic())
    lease.revoke()
    assert not lease.held()
    lease.renew(clock.monotonic())
    assert not lease.held()
    lease.registered(clock.monotonic(), 5.0)
    lease.renew(clock.monotonic())
    assert lease.held()


def test_a_publisher_waits_past_any_lease_even_on_a_slower_clock() -> None:
    for seconds in (0.25, 1.0, 1.5):
        # A gateway clock 5% slow counts `seconds` in 1.05 * seconds of real time.
        assert provable_expiry(seconds) > seconds * 1.05
    assert provable_expiry(1.0) < 1.2  # a silent gateway costs about the lease, no more


def test_the_configured_lease_is_the_longest_wait_for_a_silent_gateway() -> None:
    for wait in (0.25, 1.0, 1.5):  # CACHE_LEASE_SECONDS's range
        held = held_lease_seconds(wait)
        assert 0 < held < wait
        assert provable_expiry(held) == pytest.approx(wait)


def test_after_a_lapsed_registration_only_a_later_ping_renews() -> None:
    # The entry lapsed, so a publisher may have skipped this gateway: a PONG still queued ahead
    # of its event must not renew the lease from a PING sent before the new entry existed.
    lease, clock = _lease(1.0)
    lease.registered(clock.monotonic(), 0.5)
    old_ping = clock.monotonic()
    clock.advance(1.0)  # the registration ran out meanwhile
    lease.registered(clock.monotonic(), 5.0, continued=False)
    lease.renew(old_ping + 0.9)  # sent before the lapsed entry was renewed
    assert not lease.held()
    clock.advance(0.01)
    lease.renew(clock.monotonic())
    assert lease.held()


def test_a_continued_registration_keeps_earlier_pings_valid() -> None:
    lease, clock = _lease(1.0)
    lease.registered(clock.monotonic(), 5.0)
    ping = clock.monotonic()
    clock.advance(0.1)
    lease.registered(clock.monotonic(), 5.0, continued=True)
    lease.renew(ping)
    assert lease.held()
