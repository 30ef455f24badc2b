"""The key status rule, a pure function of (stored key, now): each case at and around its edges."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from key_service.domain import key_status
from key_service.models import KeyRecord, KeyStatus
from scout_kit.clock import ManualClock

START = datetime(2030, 1, 1, tzinfo=UTC)


def _key(ended_reason: str | None, valid_until: datetime | None) -> KeyRecord:
    return KeyRecord("key-1", "server-1", "account-1", ended_reason, valid_until)


def test_a_key_never_stored_is_not_found() -> None:
    answer = key_status(None, START)
    assert answer.status is KeyStatus.NOT_FOUND
    assert answer.key_id is None and answer.server_id is None


def test_the_current_key_is_valid_whenever_asked() -> None:
    clock = ManualClock(START)
    for _ in range(3):
        answer = key_status(_key(None, None), clock.now())
        assert answer.status is KeyStatus.VALID
        assert (answer.key_id, answer.server_id, answer.account_id) == (
            "key-1",
            "server-1",
            "account-1",
        )
        assert answer.valid_until is None
        clock.advance(10 * 365 * 86400)


def test_a_rotated_key_is_valid_until_its_grace_window_ends_and_never_again() -> None:
    clock = ManualClock(START)
    grace_end = START + timedelta(seconds=60)
    rotated = _key("rotated", grace_end)
    assert key_status(rotated, clock.now()).status is KeyStatus.VALID
    assert key_status(rotated, clock.now()).valid_until == grace_end
    clock.advance(59.999)
    assert key_status(rotated, clock.now()).status is KeyStatus.VALID
    clock.advance(0.001)  # the window ends at valid_until itself
    ended = key_status(rotated, clock.now())
    assert ended.status is KeyStatus.ROTATED
    assert ended.valid_until is None
    assert ended.server_id == "server-1"  # so the gateway can say which server's key it was
    clock.advance(86400)
    assert key_status(rotated, clock.now()).status is KeyStatus.ROTATED


def test_a_revoked_key_is_refused_from_its_end() -> None:
    assert key_status(_key("revoked", START), START).status is KeyStatus.REVOKED
    earlier = START - timedelta(microseconds=1)
    assert key_status(_key("revoked", START), earlier).status is KeyStatus.VALID
