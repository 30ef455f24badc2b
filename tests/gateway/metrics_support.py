"""Helpers for the metrics tests: servers with keys, signed-in users, the stored rows."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.keys_support import ServerKey, new_server

SESSION_COOKIE = "__Host-scout_session"

__all__ = ["ServerKey", "new_server"]


async def sign_in(http: aiohttp.ClientSession, base_url: str, email: str) -> dict[str, str]:
    """Headers that carry the user's session cookie and CSRF token."""
    async with http.post(
        f"{base_url}/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    ) as response:
        assert response.status == 200, await response.text()
        token = response.cookies[SESSION_COOKIE].value
        csrf = (await response.json())["csrf_token"]
    return {"Cookie": f"{SESSION_COOKIE}={token}", "X-CSRF-Token": csrf}


async def new_user(admin: Admin) -> str:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    return email


def stack_clock() -> ManualClock:
    """A drivable clock for a running stack. It starts two days before the real time because
    internal identity tokens are checked by PyJWT, which refuses an `iat` in the real future
    (scout_kit.identity verifies `exp` against the Clock, but not `iat`), so a test may move it
    forward by up to two days."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=2))


def body(*samples: tuple[Any, dict[str, Any]]) -> dict[str, Any]:
    return {"samples": [{"ts": ts, "metrics": metrics} for ts, metrics in samples]}


def gzipped(payload: Any) -> bytes:
    return gzip.compress(json.dumps(payload).encode())


async def post(
    http: aiohttp.ClientSession,
    base_url: str,
    api_key: str,
    payload: Any = None,
    *,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    all_headers = {"X-API-Key": api_key, **(headers or {})}
    if data is None:
        data = json.dumps(payload).encode()
        all_headers.setdefault("Content-Type", "application/json")
    async with http.post(
        f"{base_url}/api/v1/metrics", data=io.BytesIO(data), headers=all_headers
    ) as r:
        text = await r.text()
        return r.status, json.loads(text) if text else None, r.headers


STORED = "SELECT name, ts, value FROM {schema}.sample_values WHERE server_id = %s ORDER BY 1, 2"


async def stored(
    admin: Admin, server_id: str, schema: str = "ingest"
) -> list[tuple[str, datetime, float]]:
    """Every stored (name, ts, value) of a server, read straight from the raw layout."""
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(STORED.format(schema=schema), (server_id,))
        return [(r[0], r[1], r[2]) for r in await cur.fetchall()]


async def last_seen(admin: Admin, server_id: str) -> datetime | None:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT last_seen_at FROM ingest.servers_seen WHERE server_id = %s", (server_id,)
        )
        row = await cur.fetchone()
        return None if row is None else row[0]


@asynccontextmanager
async def commits_blocked(admin: Admin) -> AsyncIterator[None]:
    """While inside, group commits of the ingest service wait on a table lock (they insert
    their samples, then block on servers_seen), so requests pile up deterministically."""
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute("LOCK TABLE ingest.servers_seen IN SHARE ROW EXCLUSIVE MODE")
        try:
            yield
        finally:
            await cur.execute("COMMIT")


async def wait_for_blocked_commit(admin: Admin, count: int = 1) -> None:
    """Until `count` transactions wait on the lock of `commits_blocked` (a state, not a time:
    the loop only yields until PostgreSQL reports the waiters)."""
    for _ in range(2000):
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            row = await cur.fetchone()
        if row[0] >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError("no group commit ever waited on the lock")
