"""PostgreSQL access for samples (schema `ingest`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import aiopg

from ingest_service.samples import Write
from scout_kit.db import cursor

SCHEMA = "ingest"

# Transient conflicts between concurrent group commits (two replicas storing the same resent
# values): PostgreSQL aborts one transaction, which is simply run again.
_RETRYABLE = frozenset({"40P01", "40001"})
_ATTEMPTS = 3

# Array parameters are sent as literals built here: psycopg2 adapts list elements one by one
# in Python, which costs more than the rest of a group commit. Names are validated to
# [A-Za-z0-9_.:/-] (no quote, backslash or comma), so quoting each is enough.
_INSERT = (
    "INSERT INTO ingest.samples (server_id, name, ts, value)"
    " SELECT (%s::uuid[])[x.s], x.n, 'epoch'::timestamptz + x.t * interval '1 microsecond', x.v"
    " FROM unnest(%s::int4[], %s::text[], %s::int8[], %s::float8[]) AS x(s, n, t, v)"
    " ON CONFLICT DO NOTHING"
)
# One row per server per group commit; a server never changes account.
_SEEN = (
    "INSERT INTO ingest.servers_seen (server_id, account_id, last_seen_at)"
    " SELECT s, a, %s FROM unnest(%s::uuid[], %s::uuid[]) AS x(s, a)"
    " ON CONFLICT (server_id) DO UPDATE"
    " SET last_seen_at = GREATEST(servers_seen.last_seen_at, EXCLUDED.last_seen_at)"
)
# Only servers of the caller's account; every server with samples has a servers_seen row,
# written in the same transaction as its first samples.
_OWNED = (
    "EXISTS (SELECT 1 FROM ingest.servers_seen o"
    " WHERE o.server_id = %(s)s AND o.account_id = %(a)s)"
)
_BUCKETS = (
    "SELECT name, date_bin(make_interval(secs => %(step)s), ts, 'epoch'::timestamptz) AS b,"
    " avg(value), min(value), max(value), count(*) FROM ingest.samples"
    " WHERE server_id = %(s)s AND name = ANY(%(names)s::text[])"
    " AND ts >= %(start)s AND ts < %(end)s AND EXISTS (SELECT 1 FROM ingest.servers_seen o"
    " WHERE o.server_id = %(s)s AND o.account_id = %(a)s)"
    " GROUP BY name, b ORDER BY name, b"
)
# Distinct names by skipping through the primary key: one index probe per name, however many
# samples each name has.
_NAMES = (
    "WITH RECURSIVE n(name) AS ("
    " (SELECT name FROM ingest.samples WHERE server_id = %(s)s ORDER BY name LIMIT 1)"
    " UNION ALL"
    " SELECT (SELECT name FROM ingest.samples WHERE server_id = %(s)s AND name > n.name"
    "  ORDER BY name LIMIT 1) FROM n WHERE n.name IS NOT NULL)"
    " SELECT name FROM n WHERE name IS NOT NULL AND "
)


def _array(items: Sequence[object]) -> str:
    return "{" + ",".join(map(str, items)) + "}"


def _text_array(items: Sequence[str]) -> str:
    return '{"' + '","'.join(items) + '"}' if items else "{}"


def _float_array(items: Sequence[float]) -> str:
    return "{" + ",".join(map(repr, items)) + "}"


@dataclass(frozen=True)
class Bucket:
    name: str
    start: datetime
    avg: float
    min: float
    max: float
    count: int


class SampleRepository:
    def __init__(self, pool: aiopg.Pool) -> None:
        self._pool = pool

    async def write(self, writes: Sequence[Write], seen_at: datetime) -> None:
        """Store every write in one transaction (a group commit); duplicates are skipped."""
        servers: dict[str, int] = {}
        accounts: dict[str, str] = {}
        index: list[int] = []
        names: list[str] = []
        stamps: list[int] = []
        values: list[float] = []
        for write in writes:
            position = servers.setdefault(write.server_id, len(servers) + 1)
            accounts.setdefault(write.server_id, write.account_id)
            index.extend([position] * len(write))
            names.extend(write.names)
            stamps.extend(write.ts_micros)
            values.extend(write.values)
        params = (
            _array(list(servers)),
            _array(index),
            _text_array(names),
            _array(stamps),
            _float_array(values),
        )
        # Sorted, so concurrent commits take the servers_seen row locks in the same order.
        seen = sorted(accounts.items())
        seen_params = (seen_at, _array([s for s, _ in seen]), _array([a for _, a in seen]))
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                # One round trip: several statements in one simple query run as one implicit
                # transaction, so both are committed together or not at all.
                async with cursor(self._pool) as cur:
                    await cur.execute(_INSERT + ";" + _SEEN, params + seen_params)
                return
            except Exception as exc:
                if getattr(exc, "pgcode", None) not in _RETRYABLE or attempt == _ATTEMPTS:
                    raise

    async def last_seen(self, account_id: str, server_ids: list[str]) -> dict[str, datetime]:
        async with cursor(self._pool) as cur:
            await cur.execute(
                "SELECT server_id::text, last_seen_at FROM ingest.servers_seen"
                " WHERE account_id = %s AND server_id = ANY(%s::uuid[])",
                (account_id, server_ids),
            )
            return {row[0]: row[1] for row in await cur.fetchall()}

    async def metric_names(self, server_id: str, account_id: str) -> list[str]:
        async with cursor(self._pool) as cur:
            await cur.execute(_NAMES + _OWNED, {"s": server_id, "a": account_id})
            return [row[0] for row in await cur.fetchall()]

    async def latest(self, server_id: str, account_id: str) -> list[tuple[str, float, datetime]]:
        """The newest value of every metric (one backward index probe per name)."""
        names = await self.metric_names(server_id, account_id)
        if not names:
            return []
        async with cursor(self._pool) as cur:
            await cur.execute(
                "SELECT n.name, l.value, l.ts FROM unnest(%s::text[]) AS n(name)"
                " CROSS JOIN LATERAL (SELECT value, ts FROM ingest.samples"
                "  WHERE server_id = %s AND name = n.name ORDER BY ts DESC LIMIT 1) l"
                " ORDER BY n.name",
                (names, server_id),
            )
            return [(row[0], row[1], row[2]) for row in await cur.fetchall()]

    async def buckets(
        self,
        server_id: str,
        account_id: str,
        names: list[str],
        start: datetime,
        end: datetime,
        step_seconds: int,
    ) -> list[Bucket]:
        """avg/min/max/count per name and epoch-aligned bucket, for start <= ts < end."""
        async with cursor(self._pool) as cur:
            await cur.execute(
                _BUCKETS,
                {
                    "step": step_seconds,
                    "s": server_id,
                    "a": account_id,
                    "names": names,
                    "start": start,
                    "end": end,
                },
            )
            return [Bucket(*row) for row in await cur.fetchall()]

    async def delete_older_than(self, cutoff: datetime, batch_size: int) -> int:
        """Delete at most `batch_size` samples older than `cutoff` (one short transaction)."""
        async with cursor(self._pool) as cur:
            await cur.execute(
                "DELETE FROM ingest.samples WHERE ctid = ANY(ARRAY("
                " SELECT ctid FROM ingest.samples WHERE ts < %s LIMIT %s))",
                (cutoff, batch_size),
            )
            deleted: int = cur.rowcount
            return deleted
