"""What the README promises of sign-in, each proven by a test that fails if the promise is dropped:
an unknown email costs a password verification like a wrong password (no timing oracle), and a
user disabled while their password is being verified keeps no session."""

from __future__ import annotations

import argon2
import pytest

from auth_service.domain import Authentication, LoginOutcome
from auth_service.passwords import Passwords
from tests.auth_service.conftest import Parts
from tests.conftest import STRONG_PASSWORD, unique_email


@pytest.fixture
def argon2_verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every hash argon2 is asked to verify against, in order (the real verification runs)."""
    seen: list[str] = []
    real_verify = argon2.PasswordHasher.verify

    def verify(self: argon2.PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        seen.append(hash if isinstance(hash, str) else hash.decode())
        return real_verify(self, hash, password)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", verify)
    return seen


async def test_an_unknown_email_costs_one_real_verification_like_a_wrong_password(
    parts: Parts, argon2_verifications: list[str]
) -> None:
    email = unique_email()
    await parts.users.create_user(email, STRONG_PASSWORD)
    argon2_verifications.clear()
    wrong = await parts.auth.login(email, "not the password", "198.51.100.1", "ua")
    unknown = await parts.auth.login(unique_email(), "not the password", "198.51.100.1", "ua")
    assert wrong.outcome is unknown.outcome is LoginOutcome.INVALID_CREDENTIALS
    real, dummy = argon2_verifications
    # The unknown email was checked against a hash of the same parameters, not skipped.
    assert real != dummy
    assert real.split("$")[:4] == dummy.split("$")[:4]


class DisablingPasswords(Passwords):
    """Real verification, during which an operator disables the user (the race to close)."""

    def __init__(self, parts: Parts, email: str) -> None:
        super().__init__()
        self._parts = parts
        self._email = email

    async def verify(self, password_hash: str | None, password: str) -> bool:
        ok = await super().verify(password_hash, password)
        await self._parts.users.set_disabled(self._email, True)
        return ok


async def test_a_user_disabled_during_sign_in_keeps_no_session(parts: Parts) -> None:
    email = unique_email()
    user = await parts.users.create_user(email, STRONG_PASSWORD)
    auth = Authentication(
        parts.users,
        DisablingPasswords(parts, email),
        parts.sessions,
        parts.throttle,
        parts.activity,
    )
    result = await auth.login(email, STRONG_PASSWORD, "198.51.100.1", "ua")
    assert result.outcome is LoginOutcome.DISABLED
    assert result.session is None
    assert await parts.sessions.list_for_user(user.id) == []
