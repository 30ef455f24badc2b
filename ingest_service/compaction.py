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

Before that, closed raw days are packed, as TimescaleDB compresses chunks: a day of
`samples_raw` whose range ended more than the late-sample window (plus CLOSED_AFTER) ago, whose
minutes have no pending rollup mark and while the old-table copier is unfinished never, becomes
one `samples_packed` row per (server, hour, metric set), the hour's times and its values
metric-major (TOAST-compressed), and its raw partition is dropped, all in one transaction: a
crash at any point leaves the day either raw or packed, never both and never lost. Writes never
reach it (the late-sample window refuses them), and a partition pass never makes a raw partition
that old again. One replica packs at a time (`pg_try_advisory_xact_lock`: the others skip), and
a day already packed is simply no longer there to pack, so passes are idempotent and resumable.
"""

from __future__ import annotations

import logging
import zlib
from datetime import datetime, timedelta
from typing import Any

from ingest_service.partitions import PACKED_MARK, Partitions, partition_name
from scout_kit.db import bounded_session, bounded_transaction

log = logging.getLogger(__name__)

# How long after a partition's range ends it counts as closed.
CLOSED_AFTER = timedelta(hours=1)
COMPACTED = "scout: compacted"

RAW = "samples_raw"
PACKED = "samples_packed"
_LOCK_TIMEOUT = "5s"

# Servers per packing statement: a day of many servers is packed in several bounded statements
# (of one transaction), each a range of the raw partition's key.
PACK_SERVERS_PER_STATEMENT = 500

# Per group, the samples' values as a 2-D array [sample][metric] (every sample of a set has its
# length), transposed to [metric][sample]; in key order, so the index is built packed too.
# Answers the samples packed.
_PACK = """
WITH ins AS (
INSERT INTO {s}.samples_packed (server_id, hour, set_id, ts, vals)
SELECT g.server_id, g.hour, g.set_id, g.ts, t.vals
FROM (
  SELECT server_id, date_bin('1 hour', ts, 'epoch'::timestamptz) AS hour, set_id,
         array_agg(ts ORDER BY ts) AS ts, array_agg(vals ORDER BY ts) AS m
  FROM {s}.{partition} WHERE server_id = ANY(%(servers)s::uuid[]) GROUP BY 1, 2, 3
) g CROSS JOIN LATERAL (
  SELECT array_agg(c ORDER BY j) AS vals FROM (
    SELECT j, array_agg(g.m[k][j] ORDER BY k) AS c
    FROM generate_subscripts(g.m, 2) AS j CROSS JOIN generate_subscripts(g.m, 1) AS k
    GROUP BY j) x
) t
ORDER BY 1, 2, 3
RETURNING cardinality(ts) AS n)
SELECT coalesce(sum(n), 0)::int8 FROM ins"""

_INDEXES = """
SELECT c.relname, i.indisvalid, obj_description(i.indexrelid, 'pg_class') IS NOT DISTINCT FROM %s
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = to_regclass(%s) ORDER BY i.indisvalid, 1"""


class Compaction:
    def __init__(self, partitions: Partitions, statement_timeout: float, late: timedelta) -> None:
        self._partitions = partitions
        self._schema = partitions.schema
        self._statement_timeout = statement_timeout
        self._late = late
        self._lock_id = zlib.crc32(f"scout-compaction:{self._schema}".encode())
        self._pack_lock_id = zlib.crc32(f"scout-pack:{self._schema}".encode())

    def packable(self, existing: dict[str, set[datetime]], now: datetime) -> list[datetime]:
        """Starts of the raw days closed for writes (ended before the late-sample window plus
        CLOSED_AFTER) that retention keeps, oldest first."""
        raw = self._partitions.tables[RAW]
        horizon = now - raw.retention - raw.margin
        closed = now - self._late - CLOSED_AFTER
        return sorted(
            start for start in existing.get(RAW, set()) if horizon < start + raw.width <= closed
        )

    async def pack_once(self, now: datetime) -> list[str]:
        """Pack every closed raw day that may be packed; the raw partitions packed (none while
        another replica packs, the copier runs, or a day waits for its rollups)."""
        packed: list[str] = []
        raw = self._partitions.tables[RAW]
        for start in self.packable(await self._partitions.existing(), now):
            await self._partitions.ensure(PACKED, start, start)
            outcome = await self._pack(start)
            if outcome is None:
                break
            if outcome:
                packed.append(partition_name(raw, start))
        if packed:
            log.info("packed raw partitions %s", ", ".join(packed))
            await self._partitions.existing()
        return packed

    async def _pack(self, start: datetime) -> bool | None:
        """One day in one transaction: True when packed, False when it must wait (rollups, or
        packed already), None when it cannot be packed now (another replica packs, or the
        copier is unfinished)."""
        s = self._schema
        raw = self._partitions.tables[RAW]
        partition = partition_name(raw, start)
        async with bounded_transaction(self._partitions.pool, self._statement_timeout) as cur:
            await cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            await cur.execute("SELECT pg_try_advisory_xact_lock(%s)", (self._pack_lock_id,))
            (mine,) = await cur.fetchone()
            if not mine:
                return None
            await cur.execute(f"SELECT done FROM {s}.samples_migration")
            (copied,) = await cur.fetchone()
            if not copied:
                return None
            await cur.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{s}.{partition}",))
            (present,) = await cur.fetchone()
            if not present:
                return False
            # No write while the day is read (none is expected: the late window refuses them);
            # rollup passes still read it.
            await cur.execute(f"LOCK TABLE {s}.{partition} IN SHARE MODE")
            await cur.execute(
                f"SELECT EXISTS (SELECT 1 FROM {s}.rollup_pending"
                " WHERE tier = 1 AND bucket >= %s AND bucket < %s)",
                (start, start + raw.width),
            )
            (waiting,) = await cur.fetchone()
            if waiting:
                return False
            # Every server with samples has its metric sets (written before its samples).
            await cur.execute(f"SELECT DISTINCT server_id::text FROM {s}.metric_sets ORDER BY 1")
            servers = [row[0] for row in await cur.fetchall()]
            pack = _PACK.replace("{s}", s).replace("{partition}", partition)
            packed_samples = 0
            for first in range(0, len(servers), PACK_SERVERS_PER_STATEMENT):
                batch = servers[first : first + PACK_SERVERS_PER_STATEMENT]
                await cur.execute(pack, {"servers": batch})
                (count,) = await cur.fetchone()
                packed_samples += int(count)
            await cur.execute(f"SELECT count(*) FROM {s}.{partition}")
            (raw_samples,) = await cur.fetchone()
            if packed_samples != raw_samples:
                # Never drop a sample: the transaction rolls back, the day stays raw.
                raise RuntimeError(
                    f"packing {partition} moved {packed_samples} of {raw_samples} samples"
                )
            await cur.execute(f"DROP TABLE {s}.{partition}")
            # The day is packed: no partition pass makes its raw partition again.
            packed = partition_name(self._partitions.tables[PACKED], start)
            await cur.execute(f"COMMENT ON TABLE {s}.{packed} IS '{PACKED_MARK}'")
        return True

    def closed(self, existing: dict[str, set[datetime]], now: datetime) -> list[str]:
        """Partitions whose range ended before now - CLOSED_AFTER and that retention keeps,
        newest first."""
        names: list[tuple[datetime, str]] = []
        # A packed partition only once its day is packed: until then it may be filling in
        # another replica's packing transaction, whose last step (marking the day packed) would
        # wait for a concurrent rebuild of its index while the rebuild waits for that
        # transaction to end (a deadlock, seen at 100 servers).
        packed = self._partitions.packed_days(RAW)
        for table_name, starts in existing.items():
            table = self._partitions.tables[table_name]
            horizon = now - table.retention - table.margin
            for start in starts:
                end = start + table.width
                if table_name == PACKED and start not in packed:
                    continue
                if end <= now - CLOSED_AFTER and end > horizon:
                    names.append((start, partition_name(table, start)))
        return [name for _, name in sorted(names, reverse=True)]

    async def run_once(self, now: datetime) -> list[str]:
        """Pack the closed raw days, then rebuild the indexes of every closed partition not
        yet compacted; the indexes rebuilt (none while another replica compacts)."""
        await self.pack_once(now)
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
