"""Login and session use cases against real PostgreSQL and Redis."""

from __future__ import annotations

import pytest

from auth_service.domain import Caller, LoginOutcome
from auth_service.errors import Throttled, WeakPassword, WrongPassword
from auth_service.passwords import Passwords
from auth_service.sessions import SessionState
from auth_service.users import UserDirectory
from tests.auth_service.conftest import Parts
from tests.conftest import STRONG_PASSWORD, unique_email


async def _activity_types(parts: Parts, user_id: str) -> list[str]:
    events, _ = await parts.activity.list_for_user(user_id, 50, "")
    return [e.type for e in events]


async def test_unknown_email_and_wrong_password_get_the_same_outcome(parts: Parts) -> None:
    email = unique_email()
    user = await parts.users.create_user(email, STRONG_PASSWORD)
    wrong = await parts.auth.login(email, "not the password", "198.51.100.1", "ua")
    unknown = await parts.auth.login(unique_email(), "not the password", "198.51.100.1", "ua")
    malformed = await parts.auth.login("not an email", "not the password", "198.51.100.1", "ua")
    assert wrong == unknown == malformed
    assert wrong.outcome is LoginOutcome.INVALID_CREDENTIALS
    assert wrong.session is None
    assert await _activity_types(parts, user.id) == ["login.failed"]


async def test_login_opens_a_session_and_records_it(parts: Parts) -> None:
    email = unique_email()
    user = await parts.users.create_user(email, STRONG_PASSWORD)
    result = await parts.auth.login(email.upper(), STRONG_PASSWORD, "198.51.100.1", "ua")
    assert result.outcome is LoginOutcome.OK
    assert result.session is not None
    validated = await parts.auth.validate(result.session.token, "198.51.100.1")
    assert validated.state is SessionState.VALID
    assert validated.session is not None
    assert validated.session.user_id == user.id
    assert validated.session.email == email
    assert await _activity_types(parts, user.id) == ["login.succeeded"]


async def test_login_rehashes_when_the_argon2_parameters_changed(parts: Parts) -> None:
    email = unique_email()
    old_params = UserDirectory(
        parts.users._pool, Passwords(time_cost=1, memory_kib=8 * 1024), parts.clock
    )
    user = await old_params.create_user(email, STRONG_PASSWORD)
    before = await parts.users.password_hash(user.id)
    assert "m=8192,t=1" in before
    assert parts.passwords.needs_rehash(before)
    assert (await parts.auth.login(email, STRONG_PASSWORD, "", "")).outcome is LoginOutcome.OK
    after = await parts.users.password_hash(user.id)
    assert after != before
    assert not parts.passwords.needs_rehash(after)
    assert (await parts.auth.login(email, STRONG_PASSWORD, "", "")).outcome is LoginOutcome.OK


async def test_a_disabled_user_cannot_sign_in_and_loses_every_session(parts: Parts) -> None:
    email = unique_email()
    await parts.users.create_user(email, STRONG_PASSWORD)
    sessions = [await parts.auth.login(email, STRONG_PASSWORD, "", "") for _ in range(2)]
    user, ended = await parts.auth.disable_user(email, "admin:test")
    assert ended == 2
    for result in sessions:
        assert result.session is not None
        state = (await parts.auth.validate(result.session.token, "")).state
        assert state is SessionState.NOT_FOUND
    assert (await parts.auth.login(email, STRONG_PASSWORD, "", "")).outcome is (
        LoginOutcome.DISABLED
    )
    assert (await parts.auth.login(email, "wrong password", "", "")).outcome is (
        LoginOutcome.INVALID_CREDENTIALS
    )
    await parts.auth.enable_user(email)
    assert (await parts.auth.login(email, STRONG_PASSWORD, "", "")).outcome is LoginOutcome.OK
    events, _ = await parts.activity.list_for_user(user.id, 50, "")
    revoked = [e for e in events if e.type == "session.revoked"]
    assert revoked[0].actor == "admin:test"
    assert revoked[0].details == {"reason": "user_disabled", "revoked": 2}


async def test_guessing_the_current_password_is_throttled(parts: Parts) -> None:
    email = unique_email()
    await parts.users.create_user(email, STRONG_PASSWORD)
    result = await parts.auth.login(email, STRONG_PASSWORD, "198.51.100.9", "")
    assert result.session is not None
    record = result.session.record
    caller = Caller(record.user_id, record.account_id, record.id, "198.51.100.9")
    with pytest.raises(WeakPassword):
        await parts.auth.change_password(caller, STRONG_PASSWORD, "too short")
    for _ in range(5):
        with pytest.raises(WrongPassword):
            await parts.auth.change_password(caller, "a guess at it", "a fine new passphrase")
    with pytest.raises(Throttled) as throttled:
        await parts.auth.change_password(caller, STRONG_PASSWORD, "a fine new passphrase")
    parts.clock.advance(throttled.value.retry_after)
    assert await parts.auth.change_password(caller, STRONG_PASSWORD, "a fine new passphrase") == 0
