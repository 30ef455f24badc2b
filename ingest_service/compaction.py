"""Compaction of closed partitions: their indexes rebuilt packed full.

Writes arrive for many servers at once, each at the end of its own key range in the middle of a
partition's btree (server_id, ts), so pages split in halves and a live partition's index is
about half full (measured: 70 bytes per 20-value row where 37 would do, 1.6 bytes per raw value).
Once a partition is closed (its time range ended an hour ago) a late write is rare, so each of
its indexes is set to fillfactor 100 and rebuilt with REINDEX CONCURRENTLY, which neither blocks
writes nor reads, and is then marked done by a comment on the index (catalog state that goes
away with the partition). A late write into a full page just splits it.

One pass at a time, across replicas too (a session advisory lock, released if the connection
dies). Every statement is bounded by the compaction statement timeout; a rebuild stopped half
way leaves an invalid `_ccnew` index, which the next pass drops before it rebuilds again.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta
from typing import Any

from ingest_service.partitions import Partitions, partition_name
from scout_kit.db import bounded_session

log = logging.getLogger(__name__)

# How long after a partition's range ends it counts as closed.
CLOSED_AFTER = timedelta(hours=1)
COMPACTED = "scout: compacted"

_INDEXES = """
SELECT c.relname, i.indisvalid, obj_description(i.indexrelid, 'pg_class') IS NOT DISTINCT FROM %s
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass(%s) ORDER BY i.indisvalid, 1"""


class Compaction:
    def __init__(self, partitions: Partitions, statement_timeout: float) -> None:
        self._partitions = partitions
        self._schema = partitions.schema
        self._statement_timeout = statement_timeout
        self._lock_id = zlib.crc32(f"scout-compaction:{self._schema}".encode())

    def closed(self, existing: dict[str, set[datetime]], now: datetime) -> list[str]:
        """Partitions whose range ended before now - CLOSED_AFTER and that retention keeps,
        newest first."""
        names: list[tuple[datetime, str]] = []
        for table_name, starts in existing.items():
            table = self._partitions.tables[table_name]
            horizon = now - table.retention - table.margin
            for start in starts:
                end = start + table.width
                if end <= now - CLOSED_AFTER and end > horizon:
                    names.append((start, partition_name(table, start)))
        return [name for _, name in sorted(names, reverse=True)]

    async def run_once(self, now: datetime) -> list[str]:
        """Rebuild the indexes of every closed partition not yet compacted; the indexes
        rebuilt (none while another replica compacts)."""
        candidates = self.closed(await self._partitions.existing(), now)
        rebuilt: list[str] = []
        pool = self._partitions.pool
        async with bounded_session(pool, self._statement_timeout) as cur:
            await cur.execute("SELECT pg_try_advisory_lock(%s)", (self._lock_id,))
            (mine,) = await cur.fetchone()
            if not mine:
                return rebuilt
            try:
                for partition in candidates:
                    rebuilt.extend(await self._compact(cur, partition))
            finally:
                if not cur.connection.closed:
                    await cur.execute("SELECT pg_advisory_unlock(%s)", (self._lock_id,))
        if rebuilt:
            log.info("compacted indexes %s", ", ".join(rebuilt))
        return rebuilt

    async def _compact(self, cur: Any, partition: str) -> list[str]:
        s = self._schema
        execute = cur.execute
        await execute(_INDEXES, (COMPACTED, f"{s}.{partition}"))
        indexes = await cur.fetchall()
        done: list[str] = []
        for index, valid, compacted in indexes:
            if not valid:
                # Left by a rebuild that was stopped; never one of ours being built (one pass
                # runs at a time).
                if "_ccnew" in index:
                    await execute(f"DROP INDEX CONCURRENTLY IF EXISTS {s}.{index}")
                continue
            if compacted:
                continue
            await execute(f"ALTER INDEX {s}.{index} SET (fillfactor = 100)")
            await execute(f"REINDEX INDEX CONCURRENTLY {s}.{index}")
            await execute(f"COMMENT ON INDEX {s}.{index} IS '{COMPACTED}'")
            done.append(index)
        return done
