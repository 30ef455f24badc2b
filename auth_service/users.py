"""Accounts and users in PostgreSQL (schema `auth`): creation and lookup."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import aiopg

from auth_service.errors import EmailTaken, InvalidEmail, UserNotFound
from auth_service.passwords import Passwords, check_policy
from scout_kit.clock import Clock
from scout_kit.db import cursor, is_unique_violation, transaction

SCHEMA = "auth"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")


@dataclass(frozen=True)
class UserRecord:
    id: str
    account_id: str
    email: str
    display_name: str
    created_at: datetime
    disabled_at: datetime | None = None


def normalize_email(email: str) -> str:
    email = email.strip()
    if not _EMAIL.match(email) or "." not in email.rpartition("@")[2]:
        raise InvalidEmail("a valid email address is required")
    return email


_USER_COLUMNS = "id::text, account_id::text, email, display_name, created_at, disabled_at"


class UserDirectory:
    def __init__(self, pool: aiopg.Pool, passwords: Passwords, clock: Clock) -> None:
        self._pool = pool
        self._passwords = passwords
        self._clock = clock

    async def create_user(
        self,
        email: str,
        password: str,
        *,
        account_id: str | None = None,
        account_name: str | None = None,
        display_name: str = "",
    ) -> UserRecord:
        """A user in an existing account, or in a new account of their own."""
        email = normalize_email(email)
        password = check_policy(password, email=email)
        password_hash = await self._passwords.hash(password)
        now = self._clock.now()
        user_id = str(uuid.uuid4())
        try:
            async with transaction(self._pool) as cur:
                if account_id is None:
                    account_id = str(uuid.uuid4())
                    await cur.execute(
                        "INSERT INTO auth.accounts (id, name, created_at) VALUES (%s, %s, %s)",
                        (account_id, account_name or email, now),
                    )
                await cur.execute(
                    "INSERT INTO auth.users (id, account_id, email, display_name, password_hash,"
                    " created_at, password_changed_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (user_id, account_id, email, display_name, password_hash, now, now),
                )
        except Exception as exc:
            if is_unique_violation(exc):
                raise EmailTaken() from None
            raise
        return UserRecord(user_id, account_id, email, display_name, now)

    async def by_email(self, email: str) -> UserRecord:
        async with cursor(self._pool) as cur:
            await cur.execute(
                f"SELECT {_USER_COLUMNS} FROM auth.users WHERE lower(email) = lower(%s)",  # noqa: S608
                (email.strip(),),
            )
            row = await cur.fetchone()
        if row is None:
            raise UserNotFound()
        return UserRecord(*row)
