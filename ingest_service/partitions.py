"""Time partitions of the samples and rollup tables: created ahead, dropped whole when expired.

Each table is range-partitioned on its time column into epoch-aligned partitions of a fixed
width, named by their first day (`samples_raw_p20260101`). Every replica may run this: creating
and dropping happen in one transaction under an advisory lock with a short lock timeout, and
both are idempotent, so replicas neither collide nor wait long on ingest. Every statement of the
background work is bounded (`statement_timeout`, which the rollup job and the copier take from
here too).

A partition is dropped only when all of it is older than its table's retention and no bucket in
it still waits to be rolled up into the next tier (so a tier is never recomputed from data that
is gone). Raw partitions keep a margin past the retention, so a sample accepted at the edge of
the window always finds its partition. Raw partitions are made ahead only back to the
late-sample window: older raw days are packed into `samples_packed` (ingest_service.compaction),
whose partitions cover the whole retention.
"""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiopg

from scout_kit.db import bounded_transaction

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# How far ahead of now partitions exist, and how long past its retention a raw partition stays.
AHEAD = timedelta(days=2)
RAW_MARGIN = timedelta(hours=1)
_LOCK_TIMEOUT = "5s"
# The comment on a packed partition whose day was packed (ingest_service.compaction).
PACKED_MARK = "scout: packed"


@dataclass(frozen=True)
class PartitionedTable:
    name: str
    width: timedelta
    retention: timedelta
    # The rollup tier whose pending marks must be gone before a partition is dropped.
    feeds_tier: int | None
    margin: timedelta = timedelta(0)
    # How far back partitions are kept ready for writes (None: the whole retention). Raw
    # samples take writes only within the late-sample window; older days are packed.
    writable: timedelta | None = None
    # The table closed days are packed into: a day packed there never gets a partition here
    # again (a write for it would be stored beside its packed samples).
    packed_into: str | None = None

    def oldest_writable(self, now: datetime) -> datetime:
        return now - (self.retention if self.writable is None else self.writable)


def partition_start(moment: datetime, width: timedelta) -> datetime:
    seconds = int(width.total_seconds())
    offset = int((moment - _EPOCH).total_seconds()) // seconds * seconds
    return _EPOCH + timedelta(seconds=offset)


def partition_starts(table: PartitionedTable, lo: datetime, hi: datetime) -> Iterator[datetime]:
    """The starts of the partitions that hold [lo, hi]."""
    start = partition_start(lo, table.width)
    while start <= hi:
        yield start
        start += table.width


def partition_name(table: PartitionedTable, start: datetime) -> str:
    return f"{table.name}_p{start:%Y%m%d}"


class Partitions:
    def __init__(
        self,
        pool: aiopg.Pool,
        schema: str,
        tables: tuple[PartitionedTable, ...],
        *,
        statement_timeout: float,
    ):
        self._pool = pool
        self._schema = schema
        self.statement_timeout = statement_timeout
        self.tables = {table.name: table for table in tables}
        self._known: set[str] = set()
        # Starts of the days packed (their packed partition bears PACKED_MARK), per table
        # packed from.
        self._packed: dict[str, set[datetime]] = {}
        self._lock_id = zlib.crc32(f"scout-partitions:{schema}".encode())
        self._name = re.compile(r"^(?P<table>.+)_p(?P<day>\d{8})$")

    @property
    def pool(self) -> aiopg.Pool:
        return self._pool

    @property
    def schema(self) -> str:
        return self._schema

    async def existing(self) -> dict[str, set[datetime]]:
        """Partition starts per table, as the catalog has them now."""
        found: dict[str, set[datetime]] = {name: set() for name in self.tables}
        async with bounded_transaction(self._pool, self.statement_timeout) as cur:
            await cur.execute(
                "SELECT c.relname, obj_description(c.oid, 'pg_class') IS NOT DISTINCT FROM %s"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_class p ON p.oid = i.inhparent"
                " JOIN pg_namespace n ON n.oid = p.relnamespace"
                " WHERE n.nspname = %s",
                (PACKED_MARK, self._schema),
            )
            marked: dict[str, set[datetime]] = {}
            for relname, packed in await cur.fetchall():
                match = self._name.match(relname)
                if match and match["table"] in found:
                    day = datetime.strptime(match["day"], "%Y%m%d").replace(tzinfo=UTC)
                    found[match["table"]].add(day)
                    if packed:
                        marked.setdefault(match["table"], set()).add(day)
        self._known = {
            partition_name(self.tables[t], s) for t, starts in found.items() for s in starts
        }
        self._packed = {
            name: marked.get(table.packed_into, set())
            for name, table in self.tables.items()
            if table.packed_into is not None
        }
        return found

    def packed_days(self, table_name: str) -> set[datetime]:
        """The starts of the days of the table that are packed (as last read from the
        catalog): their packed partition is complete and final."""
        return set(self._packed.get(table_name, set()))

    def packed_through(self, table_name: str) -> datetime | None:
        """The end of the newest packed day of the table (as last read from the catalog): no
        write may be older."""
        days = self._packed.get(table_name)
        if not days:
            return None
        return max(days) + self.tables[table_name].width

    async def ensure(self, table_name: str, lo: datetime, hi: datetime) -> int:
        """Make sure partitions cover [lo, hi]; returns how many were created here."""
        table = self.tables[table_name]
        packed = self._packed.get(table_name, set())
        wanted = [s for s in partition_starts(table, lo, hi) if s not in packed]
        if all(partition_name(table, s) in self._known for s in wanted):
            return 0
        created = 0
        async with bounded_transaction(self._pool, self.statement_timeout) as cur:
            await cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
            for start in wanted:
                name = partition_name(table, start)
                if name in self._known:
                    continue
                await cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._schema}.{name}"
                    f" PARTITION OF {self._schema}.{table.name}"
                    " FOR VALUES FROM (%s) TO (%s)",
                    (start, start + table.width),
                )
                created += 1
        await self.existing()
        if created:
            log.info("partitions of %s ready from %s to %s", table.name, lo.date(), hi.date())
        return created

    async def ensure_window(self, now: datetime) -> None:
        """Every table covers its writable window [oldest writable, now + AHEAD]."""
        await self.existing()
        for name, table in self.tables.items():
            await self.ensure(name, table.oldest_writable(now), now + AHEAD)

    async def drop_expired(self, now: datetime) -> list[str]:
        """Drop every partition wholly past its table's retention whose data is rolled up."""
        dropped: list[str] = []
        for table_name, starts in (await self.existing()).items():
            table = self.tables[table_name]
            horizon = now - table.retention - table.margin
            for start in sorted(starts):
                if start + table.width > horizon:
                    break
                if await self._drop(table, start):
                    dropped.append(partition_name(table, start))
        if dropped:
            log.info("retention dropped partitions %s", ", ".join(dropped))
            await self.existing()
        return dropped

    async def _drop(self, table: PartitionedTable, start: datetime) -> bool:
        async with bounded_transaction(self._pool, self.statement_timeout) as cur:
            await cur.execute(f"SET LOCAL lock_timeout = '{_LOCK_TIMEOUT}'")
            await cur.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_id,))
            if table.feeds_tier is not None:
                await cur.execute(
                    f"SELECT EXISTS (SELECT 1 FROM {self._schema}.rollup_pending"
                    " WHERE tier = %s AND bucket >= %s AND bucket < %s)",
                    (table.feeds_tier, start, start + table.width),
                )
                (waiting,) = await cur.fetchone()
                if waiting:
                    return False
            await cur.execute(f"DROP TABLE IF EXISTS {self._schema}.{partition_name(table, start)}")
        return True
