"""PostgreSQL access for samples (schema `ingest`)."""

from __future__ import annotations

from datetime import datetime

import aiopg

from scout_kit.db import cursor, transaction

SCHEMA = "ingest"


class SampleRepository:
    def __init__(self, pool: aiopg.Pool) -> None:
        self._pool = pool

    async def write(
        self,
        server_id: str,
        account_id: str,
        rows: list[tuple[str, datetime, float]],
        seen_at: datetime,
    ) -> int:
        """Insert all rows in one transaction; duplicates of earlier rows are skipped."""
        names = [r[0] for r in rows]
        times = [r[1] for r in rows]
        values = [r[2] for r in rows]
        async with transaction(self._pool) as cur:
            await cur.execute(
                "INSERT INTO ingest.samples (server_id, name, ts, value)"
                " SELECT %s, n, t, v FROM unnest(%s::text[], %s::timestamptz[], %s::float8[])"
                " AS x(n, t, v) ON CONFLICT DO NOTHING",
                (server_id, names, times, values),
            )
            inserted: int = cur.rowcount
            await cur.execute(
                "INSERT INTO ingest.servers_seen (server_id, account_id, last_seen_at)"
                " VALUES (%s, %s, %s) ON CONFLICT (server_id) DO UPDATE"
                " SET last_seen_at = GREATEST(servers_seen.last_seen_at, EXCLUDED.last_seen_at)",
                (server_id, account_id, seen_at),
            )
        return inserted

    async def last_seen(self, account_id: str, server_ids: list[str]) -> dict[str, datetime]:
        async with cursor(self._pool) as cur:
            await cur.execute(
                "SELECT server_id::text, last_seen_at FROM ingest.servers_seen"
                " WHERE account_id = %s AND server_id = ANY(%s::uuid[])",
                (account_id, server_ids),
            )
            return {row[0]: row[1] for row in await cur.fetchall()}
