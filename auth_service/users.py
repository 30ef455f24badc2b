"""Accounts and users in PostgreSQL (schema `auth`): creation, lookup, passwords, disabling."""

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

    async def by_id(self, user_id: str) -> UserRecord:
        async with cursor(self._pool) as cur:
            await cur.execute(
                f"SELECT {_USER_COLUMNS} FROM auth.users WHERE id = %s",  # noqa: S608
                (user_id,),
            )
            row = await cur.fetchone()
        if row is None:
            raise UserNotFound()
        return UserRecord(*row)

    async def credentials(self, email: str) -> tuple[UserRecord, str] | None:
        """The user and their password hash, or None for an unknown (or malformed) email."""
        try:
            email = normalize_email(email)
        except InvalidEmail:
            return None
        async with cursor(self._pool) as cur:
            await cur.execute(
                f"SELECT {_USER_COLUMNS}, password_hash FROM auth.users"  # noqa: S608
                " WHERE lower(email) = lower(%s)",
                (email,),
            )
            row = await cur.fetchone()
        if row is None:
            return None
        return UserRecord(*row[:-1]), row[-1]

    async def password_hash(self, user_id: str) -> str:
        async with cursor(self._pool) as cur:
            await cur.execute("SELECT password_hash FROM auth.users WHERE id = %s", (user_id,))
            row = await cur.fetchone()
        if row is None:
            raise UserNotFound()
        return str(row[0])

    async def store_password_hash(self, user_id: str, password_hash: str, *, changed: bool) -> None:
        """Replace the hash: a new password (`changed`), or the same one rehashed at login with
        the current argon2 parameters, which is not a password change."""
        async with cursor(self._pool) as cur:
            if changed:
                await cur.execute(
                    "UPDATE auth.users SET password_hash = %s, password_changed_at = %s"
                    " WHERE id = %s",
                    (password_hash, self._clock.now(), user_id),
                )
            else:
                await cur.execute(
                    "UPDATE auth.users SET password_hash = %s WHERE id = %s",
                    (password_hash, user_id),
                )

    async def set_disabled(self, email: str, disabled: bool) -> UserRecord:
        """Disable (or enable again) a user; a disabled user cannot sign in."""
        async with cursor(self._pool) as cur:
            await cur.execute(
                "UPDATE auth.users SET disabled_at = CASE WHEN %s THEN coalesce(disabled_at, %s)"  # noqa: S608
                f" END WHERE lower(email) = lower(%s) RETURNING {_USER_COLUMNS}",
                (disabled, self._clock.now(), email.strip()),
            )
            row = await cur.fetchone()
        if row is None:
            raise UserNotFound()
        return UserRecord(*row)

    async def is_disabled(self, user_id: str) -> bool:
        async with cursor(self._pool) as cur:
            await cur.execute("SELECT disabled_at FROM auth.users WHERE id = %s", (user_id,))
            row = await cur.fetchone()
        return row is None or row[0] is not None
