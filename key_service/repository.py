"""PostgreSQL access for servers, keys and key activity (schema `keys`)."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any, Protocol, cast

import aiopg
import psycopg2

from key_service.errors import ServerNotFound
from key_service.models import (
    ActivityEvent,
    ActivityType,
    Ended,
    EndedKey,
    KeyRecord,
    KeyRejectionReport,
    KeyUsageReport,
    ServerChange,
    ServerRecord,
)
from scout_kit.cursor import Cursor
from scout_kit.db import UNKNOWN_STATEMENT, PreparedStatement, ReadPools, cursor, transaction
from scout_kit.timestamps import format_time

log = logging.getLogger(__name__)

SCHEMA = "keys"

_SERVER_COLUMNS = """
    s.id::text, s.account_id::text, s.name, s.created_at,
    k.hint, k.created_at, k.last_used_at, k.last_used_address, s.paused_at
"""
_SERVER_FROM = """
    keys.servers s
    JOIN keys.api_keys k ON k.server_id = s.id AND k.ended_reason IS NULL
"""


# ValidateKey's one statement, prepared once per session (connection): PostgreSQL then neither
# parses nor plans it on every cache miss of every gateway.
_FIND_KEY = (
    "SELECT id::text, server_id::text, account_id::text, ended_reason, valid_until"
    " FROM keys.api_keys WHERE key_sha256 = %(digest)s"
)


def _server(row: tuple[Any, ...]) -> ServerRecord:
    return ServerRecord(*row)


class KeyRepository(Protocol):
    async def create_server(
        self,
        *,
        account_id: str,
        name: str,
        key_sha256: bytes,
        hint: str,
        actor: str,
        address: str,
        now: datetime,
    ) -> ServerRecord: ...

    async def list_servers(
        self,
        account_id: str,
        only_server: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ServerRecord]: ...

    async def get_server(self, account_id: str, server_id: str) -> ServerRecord: ...

    async def delete_server(
        self, *, account_id: str, server_id: str, actor: str, address: str, now: datetime
    ) -> Ended: ...

    async def update_server(
        self, change: ServerChange, *, actor: str, address: str, now: datetime
    ) -> ServerRecord: ...

    async def rotate_key(
        self,
        *,
        account_id: str,
        server_id: str,
        key_sha256: bytes,
        hint: str,
        actor: str,
        address: str,
        now: datetime,
        grace_until: datetime,
    ) -> tuple[ServerRecord, Ended]: ...

    async def invalidations_delivered(self, outbox_ids: tuple[int, ...]) -> None: ...

    def undelivered_invalidations(
        self, older_than_seconds: float, limit: int
    ) -> AbstractAsyncContextManager[list[EndedKey]]: ...

    async def find_key(self, key_sha256: bytes) -> KeyRecord | None: ...

    async def record_rejections(self, reports: list[KeyRejectionReport]) -> None: ...

    async def record_usage(self, reports: list[KeyUsageReport]) -> None: ...

    async def list_activity(
        self,
        account_id: str,
        server_id: str,
        before: tuple[datetime, int] | None,
        limit: int,
        types: list[str],
    ) -> list[ActivityEvent]: ...


class PostgresKeyRepository:
    def __init__(self, pool: aiopg.Pool, reads: ReadPools | None = None) -> None:
        # Key validation and rotation read the primary; activity lists may read a replica.
        self._pool = pool
        self._reads = reads or ReadPools(pool)
        self._find_key = PreparedStatement(_FIND_KEY, {"digest": "bytea"})

    async def create_server(
        self,
        *,
        account_id: str,
        name: str,
        key_sha256: bytes,
        hint: str,
        actor: str,
        address: str,
        now: datetime,
    ) -> ServerRecord:
        server_id, key_id = str(uuid.uuid4()), str(uuid.uuid4())
        async with transaction(self._pool) as cur:
            await cur.execute(
                "INSERT INTO keys.servers (id, account_id, name, created_at, created_by)"
                " VALUES (%s, %s, %s, %s, %s)",
                (server_id, account_id, name, now, actor),
            )
            await cur.execute(
                "INSERT INTO keys.api_keys (id, server_id, account_id, key_sha256, hint,"
                " created_at, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (key_id, server_id, account_id, key_sha256, hint, now, actor),
            )
            await _insert_activity(
                cur,
                server_id,
                account_id,
                key_id,
                ActivityType.KEY_CREATED,
                now,
                actor,
                address,
                hint,
                {},
            )
        return ServerRecord(server_id, account_id, name, now, hint, now, None, None)

    async def list_servers(
        self,
        account_id: str,
        only_server: str | None,
        after: tuple[datetime, str] | None,
        limit: int,
    ) -> list[ServerRecord]:
        conditions = ["s.account_id = %s", "s.deleted_at IS NULL"]
        params: list[object] = [account_id]
        if only_server is not None:
            conditions.append("s.id = %s")
            params.append(only_server)
        if after is not None:
            conditions.append("(s.created_at, s.id) > (%s, %s)")
            params.extend(after)
        params.append(limit)
        async with cursor(self._pool) as cur:
            await cur.execute(
                f"SELECT {_SERVER_COLUMNS} FROM {_SERVER_FROM} WHERE {' AND '.join(conditions)}"
                " ORDER BY s.created_at, s.id LIMIT %s",
                params,
            )
            return [_server(row) for row in await cur.fetchall()]

    async def get_server(self, account_id: str, server_id: str) -> ServerRecord:
        async with cursor(self._pool) as cur:
            await cur.execute(
                f"SELECT {_SERVER_COLUMNS} FROM {_SERVER_FROM}"
                " WHERE s.id = %s AND s.account_id = %s AND s.deleted_at IS NULL",
                (server_id, account_id),
            )
            row = await cur.fetchone()
        if row is None:
            raise ServerNotFound()
        return _server(row)

    async def delete_server(
        self, *, account_id: str, server_id: str, actor: str, address: str, now: datetime
    ) -> Ended:
        async with transaction(self._pool) as cur:
            await _lock_server(cur, account_id, server_id)
            await cur.execute(
                "UPDATE keys.servers SET deleted_at = %s WHERE id = %s", (now, server_id)
            )
            # Every key still accepted, the current one and any in a grace window, ends now;
            # locked first in id order, as everything else that changes keys locks them (0005).
            await cur.execute("SELECT keys.lock_live_keys(%s, %s)", (server_id, now))
            await cur.execute(
                "UPDATE keys.api_keys SET ended_reason = 'revoked', valid_until = %s"
                " WHERE server_id = %s AND (ended_reason IS NULL OR valid_until > %s)"
                " RETURNING id::text, key_sha256, hint",
                (now, server_id, now),
            )
            revoked = await cur.fetchall()
            ended = [
                EndedKey(key_id, bytes(digest), server_id, "revoked", now)
                for key_id, digest, _ in revoked
            ]
            outbox_ids = await _queue_invalidations(cur, ended)
            for key_id, _, hint in revoked:
                await _insert_activity(
                    cur,
                    server_id,
                    account_id,
                    key_id,
                    ActivityType.KEY_REVOKED,
                    now,
                    actor,
                    address,
                    hint,
                    {"reason": "server.deleted"},
                )
        return Ended(ended, outbox_ids)

    async def update_server(
        self, change: ServerChange, *, actor: str, address: str, now: datetime
    ) -> ServerRecord:
        """Apply what differs from the stored server, each change in the activity log."""
        async with transaction(self._pool) as cur:
            await _lock_server(cur, change.account_id, change.server_id)
            await cur.execute(
                f"SELECT {_SERVER_COLUMNS} FROM {_SERVER_FROM} WHERE s.id = %s",
                (change.server_id,),
            )
            before = _server(await cur.fetchone())
            events: list[tuple[ActivityType, dict[str, object]]] = []
            if change.name is not None and change.name != before.name:
                await cur.execute(
                    "UPDATE keys.servers SET name = %s WHERE id = %s",
                    (change.name, change.server_id),
                )
                events.append(
                    (ActivityType.SERVER_RENAMED, {"old_name": before.name, "name": change.name})
                )
            if change.paused is not None and change.paused != (before.paused_at is not None):
                await cur.execute(
                    "UPDATE keys.servers SET paused_at = %s WHERE id = %s",
                    (now if change.paused else None, change.server_id),
                )
                kind = ActivityType.SERVER_PAUSED if change.paused else ActivityType.SERVER_RESUMED
                events.append((kind, {}))
            for kind, details in events:
                await cur.execute(
                    "INSERT INTO keys.activity (server_id, account_id, type, occurred_at, actor,"
                    " client_address, details) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        change.server_id,
                        change.account_id,
                        kind,
                        now,
                        actor,
                        address,
                        json.dumps(details),
                    ),
                )
            await cur.execute(
                f"SELECT {_SERVER_COLUMNS} FROM {_SERVER_FROM} WHERE s.id = %s",
                (change.server_id,),
            )
            return _server(await cur.fetchone())

    async def rotate_key(
        self,
        *,
        account_id: str,
        server_id: str,
        key_sha256: bytes,
        hint: str,
        actor: str,
        address: str,
        now: datetime,
        grace_until: datetime,
    ) -> tuple[ServerRecord, Ended]:
        details: dict[str, object] = {}
        if grace_until > now:
            details["old_key_valid_until"] = format_time(grace_until)
        # One statement, its own transaction (migration 0004: what it does, in order).
        async with cursor(self._pool) as cur:
            await cur.execute(
                "SELECT * FROM keys.rotate_key(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    account_id,
                    server_id,
                    str(uuid.uuid4()),
                    key_sha256,
                    hint,
                    actor,
                    address,
                    now,
                    grace_until,
                    ActivityType.KEY_ROTATED.value,
                    json.dumps(details),
                ),
            )
            row = await cur.fetchone()
        if row is None:
            raise ServerNotFound()
        key_ids, digests, valid_until, outbox_ids, *server = row
        ended = [
            EndedKey(key_id, bytes(digest), server_id, "rotated", until)
            for key_id, digest, until in zip(key_ids, digests, valid_until, strict=True)
        ]
        return _server(tuple(server)), Ended(ended, tuple(outbox_ids))

    async def invalidations_delivered(self, outbox_ids: tuple[int, ...]) -> None:
        """Every gateway was told: the rows go. If they cannot, the relay publishes them once more,
        which no gateway minds (an invalidation only drops entries)."""
        if not outbox_ids:
            return
        try:
            async with transaction(self._pool) as cur:
                # Losing this delete in a crash only has the relay publish the rows once more, so
                # the answer waits for its commit but not for the commit to reach the disk.
                await cur.execute(
                    "SET LOCAL synchronous_commit TO off;"
                    " DELETE FROM keys.invalidation_outbox WHERE id = ANY(%s)",
                    (list(outbox_ids),),
                )
        except psycopg2.Error as exc:
            log.warning("could not clear %d delivered invalidations: %r", len(outbox_ids), exc)

    @contextlib.asynccontextmanager
    async def undelivered_invalidations(
        self, older_than_seconds: float, limit: int
    ) -> AsyncIterator[list[EndedKey]]:
        """Up to `limit` ended keys queued more than `older_than_seconds` ago, locked against every
        other relay (SKIP LOCKED) and deleted when the block ends without an error."""
        async with transaction(self._pool) as cur:
            await cur.execute(
                "SELECT id, key_id::text, key_sha256, server_id::text, reason, valid_until"
                " FROM keys.invalidation_outbox"
                " WHERE queued_at < clock_timestamp() - make_interval(secs => %s)"
                " ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
                (older_than_seconds, limit),
            )
            rows = await cur.fetchall()
            yield [EndedKey(k, bytes(d), s, r, v) for _, k, d, s, r, v in rows]
            if rows:
                await cur.execute(
                    "DELETE FROM keys.invalidation_outbox WHERE id = ANY(%s)",
                    ([row[0] for row in rows],),
                )

    async def find_key(self, key_sha256: bytes) -> KeyRecord | None:
        async with cursor(self._pool) as cur:
            for attempt in (1, 2):
                try:
                    await self._find_key.execute(cur, {"digest": key_sha256})
                    break
                except psycopg2.Error as exc:
                    # The session lost it (DEALLOCATE): outside a transaction, prepare it again.
                    if exc.pgcode != UNKNOWN_STATEMENT or attempt == 2:
                        raise
            row = await cur.fetchone()
        return None if row is None else KeyRecord(*row)

    async def record_rejections(self, reports: list[KeyRejectionReport]) -> None:
        """Count attempts with ended keys and move each key's rolling `key.rejected` event;
        reports of keys that are unknown or not ended are ignored."""
        await self._record(
            _RECORD_REJECTIONS,
            [(r.key_id, r.last_rejected_at, r.address, r.count) for r in reports],
            ActivityType.KEY_REJECTED,
        )

    async def record_usage(self, reports: list[KeyUsageReport]) -> None:
        """Count uses, keep each key's latest use and its address, and move its rolling
        `key.used` event; reports of unknown keys are ignored."""
        await self._record(
            _RECORD_USAGE,
            [(r.key_id, r.last_used_at, r.address, r.count) for r in reports],
            ActivityType.KEY_USED,
        )

    async def _record(self, statement: str, reports: list[_Report], activity: ActivityType) -> None:
        """One statement (_REPORTED) for reports of (key id, time, address, count)."""
        merged = _merged(reports)
        if not merged:
            return
        key_ids, times, addresses, counts = (list(column) for column in zip(*merged, strict=True))
        async with cursor(self._pool) as cur:
            await cur.execute(statement, (key_ids, times, addresses, counts, activity.value))

    async def list_activity(
        self,
        account_id: str,
        server_id: str,
        before: tuple[datetime, int] | None,
        limit: int,
        types: list[str],
    ) -> list[ActivityEvent]:
        params: list[object] = [server_id, account_id]
        page = ""
        if types:
            page += " AND type = ANY(%s)"
            params.append(types)
        if before is not None:
            page += " AND (occurred_at, id) < (%s, %s)"
            params.extend(before)
        params.append(limit)
        async with cursor(await self._reads.for_lagging_read()) as cur:
            await cur.execute(
                "SELECT id, type, occurred_at, actor, client_address, key_hint, details"
                " FROM keys.activity WHERE server_id = %s AND account_id = %s"
                f"{page} ORDER BY occurred_at DESC, id DESC LIMIT %s",
                params,
            )
            rows = await cur.fetchall()
        return [
            ActivityEvent(
                str(row[0]),
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                row[6] if isinstance(row[6], dict) else json.loads(row[6]),
            )
            for row in rows
        ]


async def _queue_invalidations(cur: Cursor, ended: list[EndedKey]) -> tuple[int, ...]:
    """Write `ended` to the outbox, in the transaction of the change that ended them."""
    if not ended:
        return ()
    await cur.execute(
        "INSERT INTO keys.invalidation_outbox (key_id, key_sha256, server_id, reason, valid_until)"
        " SELECT * FROM unnest(%s::uuid[], %s::bytea[], %s::uuid[], %s::text[], %s::timestamptz[])"
        " RETURNING id",
        (
            [key.key_id for key in ended],
            [key.key_sha256 for key in ended],
            [key.server_id for key in ended],
            [key.reason for key in ended],
            [key.valid_until for key in ended],
        ),
    )
    return tuple(cast(int, row[0]) for row in await cur.fetchall())


async def _lock_server(cur: Cursor, account_id: str, server_id: str) -> None:
    await cur.execute(
        "SELECT 1 FROM keys.servers WHERE id = %s AND account_id = %s AND deleted_at IS NULL"
        " FOR NO KEY UPDATE",
        (server_id, account_id),
    )
    if await cur.fetchone() is None:
        raise ServerNotFound()


_ACTIVITY_INSERT = (
    "INSERT INTO keys.activity (server_id, account_id, key_id, type, occurred_at, actor,"
    " client_address, key_hint, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
# key.used and key.rejected are one rolling row per key: the latest use, and counts in details.
_ROLLING_UPDATE = (
    " ON CONFLICT (key_id, type) WHERE type IN ('key.used', 'key.rejected') DO UPDATE SET"
    " occurred_at = EXCLUDED.occurred_at, client_address = EXCLUDED.client_address,"
    " details = EXCLUDED.details"
)


# The gateways' usage reports are one statement each, in autocommit: a report of thousands of
# keys holds their row locks only while that statement runs (a rotation of one of them waits
# that long; it used to wait for a transaction of two round trips per key), and the rows are
# locked in key id order before they change, as a rotation and a deletion lock theirs
# (migration 0005), so reports and changes that share keys never deadlock. A report names each
# key once (_merged): an UPDATE joins a row to one report only, and ON CONFLICT may not move a
# row twice.
_REPORTED = """
WITH report AS (
    SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::text[], %s::bigint[])
        AS r (key_id, at, address, count)
), locked AS MATERIALIZED (
    SELECT k.id FROM keys.api_keys k WHERE k.id IN (SELECT key_id FROM report)
    ORDER BY k.id
    FOR NO KEY UPDATE
)"""
_RECORD_USAGE = (
    _REPORTED
    + """, changed AS (
    UPDATE keys.api_keys k SET
        last_used_address = CASE WHEN k.last_used_at IS NULL OR k.last_used_at <= r.at
            THEN r.address ELSE k.last_used_address END,
        last_used_at = GREATEST(k.last_used_at, r.at),
        use_count = k.use_count + r.count
    FROM report r JOIN locked l ON l.id = r.key_id
    WHERE k.id = r.key_id
    RETURNING k.id, k.server_id, k.account_id, k.hint, k.last_used_at AS at,
        coalesce(k.last_used_address, '') AS address, '{}'::jsonb AS details
)"""
)
_RECORD_REJECTIONS = (
    _REPORTED
    + """, changed AS (
    UPDATE keys.api_keys k SET
        last_rejected_at = GREATEST(k.last_rejected_at, r.at),
        rejected_count = k.rejected_count + r.count
    FROM report r JOIN locked l ON l.id = r.key_id
    WHERE k.id = r.key_id AND k.ended_reason IS NOT NULL
    RETURNING k.id, k.server_id, k.account_id, k.hint, k.last_rejected_at AS at,
        r.address,
        jsonb_build_object('reason', k.ended_reason, 'attempts', k.rejected_count) AS details
)"""
)
# Appended to both: each changed key's rolling event, in key id order.
_ROLLING_FROM_CHANGED = """
INSERT INTO keys.activity
    (server_id, account_id, key_id, type, occurred_at, actor, client_address, key_hint, details)
SELECT c.server_id, c.account_id, c.id, %s, c.at, '', c.address, c.hint, c.details
FROM changed c ORDER BY c.id"""
_RECORD_USAGE += _ROLLING_FROM_CHANGED + _ROLLING_UPDATE
_RECORD_REJECTIONS += _ROLLING_FROM_CHANGED + _ROLLING_UPDATE


# A gateway's report of one key: its id, the latest time, that time's address, how many.
_Report = tuple[str, datetime, str, int]


def _merged(reports: list[_Report]) -> list[_Report]:
    """One report per key: counts added up, the latest report's time and address (of equal
    times, the later in the list)."""
    by_key: dict[str, _Report] = {}
    for report in reports:
        key_id, at, _, count = report
        seen = by_key.get(key_id)
        if seen is None:
            by_key[key_id] = report
            continue
        latest = report if at >= seen[1] else seen
        by_key[key_id] = (key_id, latest[1], latest[2], seen[3] + count)
    return list(by_key.values())


async def _insert_activity(
    cur: Cursor,
    server_id: str,
    account_id: str,
    key_id: str,
    type_: str,
    at: datetime,
    actor: str,
    address: str,
    hint: str,
    details: dict[str, object],
) -> None:
    """One event of a server's key activity (the rolling ones come from _RECORD_USAGE and
    _RECORD_REJECTIONS)."""
    await cur.execute(
        _ACTIVITY_INSERT,
        (server_id, account_id, key_id, type_, at, actor, address, hint, json.dumps(details)),
    )
