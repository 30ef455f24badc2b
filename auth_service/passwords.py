"""Password policy (ASVS 5.0) and argon2id hashing, verified off the event loop."""

from __future__ import annotations

import asyncio
import unicodedata
from functools import cache
from importlib import resources

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from auth_service.errors import WeakPassword

MIN_LENGTH = 12
MAX_LENGTH = 128

# OWASP's argon2id recommendation is m=19 MiB, t=2, p=1; we go above it on memory.
DEFAULT_TIME_COST = 2
DEFAULT_MEMORY_KIB = 46 * 1024
DEFAULT_PARALLELISM = 1


@cache
def common_passwords() -> frozenset[str]:
    """The shipped list (see its header for the source), lower-cased; '#' lines are comments."""
    text = resources.files("auth_service").joinpath("common_passwords.txt").read_text("utf-8")
    entries = (line.strip() for line in text.splitlines())
    return frozenset(entry.lower() for entry in entries if entry and not entry.startswith("#"))


def normalize(password: str) -> str:
    return unicodedata.normalize("NFKC", password)


def check_policy(password: str, *, email: str | None = None) -> str:
    """The normalized password, or WeakPassword saying what to change. No composition rules."""
    password = normalize(password)
    if len(password) < MIN_LENGTH:
        raise WeakPassword(f"the password must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        raise WeakPassword(f"the password must be at most {MAX_LENGTH} characters long")
    lowered = password.lower()
    if lowered in common_passwords():
        raise WeakPassword("this password is too common; choose another")
    if email and lowered == email.lower():
        raise WeakPassword("the password must not be your email address")
    return password


class Passwords:
    def __init__(
        self,
        time_cost: int = DEFAULT_TIME_COST,
        memory_kib: int = DEFAULT_MEMORY_KIB,
        parallelism: int = DEFAULT_PARALLELISM,
    ) -> None:
        self._hasher = PasswordHasher(
            time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
        )
        # Verified against when the email is unknown, so both paths cost the same.
        self._dummy_hash = self._hasher.hash("not a real password, only for timing")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, normalize(password))

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """True when the password matches; with no hash, spends the same time and says no."""
        target = password_hash or self._dummy_hash
        try:
            ok = await asyncio.to_thread(self._hasher.verify, target, normalize(password))
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False
        return bool(ok) and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        return self._hasher.check_needs_rehash(password_hash)
