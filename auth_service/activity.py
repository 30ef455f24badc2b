"""The activity log of sign-ins and sessions, in PostgreSQL (`auth.activity`)."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from datetime import datetime

import aiopg

from auth_service.errors import InvalidActivityQuery
from scout_kit.clock import Clock
from scout_kit.db import ReadPools, cursor
from scout_kit.filters import UnknownValues, known_values

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


class ActivityType(enum.StrEnum):
    LOGIN_SUCCEEDED = "login.succeeded"
    LOGIN_FAILED = "login.failed"
    LOGOUT = "logout"
    PASSWORD_CHANGED = "password.changed"  # noqa: S105 (an event name)
    SESSION_REVOKED = "session.revoked"


@dataclass(frozen=True)
class ActivityEvent:
    id: int
    type: str
    occurred_at: datetime
    actor: str
    client_address: str
    user_agent: str
    details: dict[str, object] = field(default_factory=dict)


class InvalidPageToken(InvalidActivityQuery):
    pass


def parse_types(requested: list[str]) -> list[str]:
    """The event types a listing is filtered to (none: every type); unknown ones refused."""
    try:
        return known_values(requested, (t.value for t in ActivityType), "activity type")
    except UnknownValues as exc:
        raise InvalidActivityQuery(str(exc)) from None


def parse_page_token(token: str) -> int | None:
    if not token:
        return None
    if not token.isdigit() or len(token) > 19:
        raise InvalidPageToken("page_token is not one this service returned")
    return int(token)


class ActivityLog:
    def __init__(self, pool: aiopg.Pool, clock: Clock, reads: ReadPools | None = None) -> None:
        self._pool = pool
        # Listing may be served by a read replica of bounded staleness.
        self._reads = reads or ReadPools(pool)
        self._clock = clock

    async def record(
        self,
        type_: ActivityType,
        *,
        user_id: str | None,
        account_id: str | None,
        actor: str = "",
        client_address: str = "",
        user_agent: str = "",
        details: dict[str, object] | None = None,
    ) -> None:
        async with cursor(self._pool) as cur:
            await cur.execute(
                "INSERT INTO auth.activity (user_id, account_id, type, occurred_at, actor,"
                " client_address, user_agent, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    user_id,
                    account_id,
                    type_.value,
                    self._clock.now(),
                    actor,
                    client_address[:256],
                    user_agent[:256],
                    json.dumps(details or {}),
                ),
            )

    async def list_for_user(
        self, user_id: str, page_size: int, page_token: str, types: list[str] | None = None
    ) -> tuple[list[ActivityEvent], str]:
        """One page of the user's events (of `types`, or all), newest first, and the token of
        the next page."""
        before = parse_page_token(page_token)
        wanted = parse_types(types or [])
        limit = min(page_size, MAX_PAGE_SIZE) if page_size > 0 else DEFAULT_PAGE_SIZE
        async with cursor(await self._reads.for_lagging_read()) as cur:
            await cur.execute(
                "SELECT id, type, occurred_at, actor, client_address, user_agent, details::text"
                " FROM auth.activity WHERE user_id = %s AND (%s::bigint IS NULL OR id < %s)"
                " AND (cardinality(%s::text[]) = 0 OR type = ANY(%s::text[]))"
                " ORDER BY id DESC LIMIT %s",
                (user_id, before, before, wanted, wanted, limit + 1),
            )
            rows = await cur.fetchall()
        events = [
            ActivityEvent(row[0], row[1], row[2], row[3], row[4], row[5], json.loads(row[6]))
            for row in rows[:limit]
        ]
        next_token = str(events[-1].id) if len(rows) > limit else ""
        return events, next_token
