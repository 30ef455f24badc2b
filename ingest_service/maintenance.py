"""The ingest service's background work: partitions ahead and retention by dropping them, the
rollup job, the compaction of closed partitions, and the move of the old samples table. Each
loop survives a database outage (a failed pass is logged and retried at the next interval) and
holds no state of its own beyond what the database keeps, so a restart or another replica
simply carries on."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import psycopg2

from ingest_service.compaction import Compaction
from ingest_service.copier import SampleCopier
from ingest_service.partitions import RAW_MARGIN, PartitionedTable, Partitions
from ingest_service.rollup import RollupJob
from scout_kit.clock import Clock
from scout_kit.db import StatementTimeout
from scout_kit.grpc_server import DEPENDENCY_ERRORS

log = logging.getLogger(__name__)

# A lock timeout (55P03), a deadlock with a concurrent replica or a statement stopped at its
# bound is worth a retry, not a crash.
_PASS_ERRORS: tuple[type[BaseException], ...] = (
    *DEPENDENCY_ERRORS,
    psycopg2.Error,
    StatementTimeout,
)
COPIER_PAUSE_SECONDS = 0.05


def partitioned_tables(
    raw: timedelta, minute: timedelta, hour: timedelta, late: timedelta
) -> tuple[PartitionedTable, ...]:
    """Each table's partition width, retention, the tier it feeds, and how far back it takes
    writes (raw samples: the late-sample window)."""
    day = timedelta(days=1)
    return (
        PartitionedTable(
            "samples_raw",
            day,
            raw,
            feeds_tier=1,
            margin=RAW_MARGIN,
            writable=min(late, raw),
            packed_into="samples_packed",
        ),
        PartitionedTable("samples_packed", day, raw, feeds_tier=1, margin=RAW_MARGIN),
        PartitionedTable("rollup_1m", timedelta(days=7), minute, feeds_tier=2),
        PartitionedTable("rollup_1h", timedelta(days=28), hour, feeds_tier=None),
    )


class Maintenance:
    def __init__(
        self,
        partitions: Partitions,
        rollup: RollupJob,
        copier: SampleCopier,
        compaction: Compaction,
        clock: Clock,
    ) -> None:
        self.partitions = partitions
        self.rollup = rollup
        self.copier = copier
        self.compaction = compaction
        self._clock = clock

    async def prepare(self) -> None:
        """Before serving: partitions for every sample the service may accept."""
        await self.partitions.ensure_window(self._clock.now())

    async def cover(self, lo: datetime, hi: datetime) -> None:
        """Partitions for samples from lo to hi (a write found one missing: the clock moved
        on faster than the partition pass), within the window each table takes writes in (so
        never a raw partition for a day that may be packed)."""
        now = self._clock.now()
        for name, table in self.partitions.tables.items():
            await self.partitions.ensure(name, max(lo, table.oldest_writable(now)), hi)

    async def partitions_once(self) -> list[str]:
        now = self._clock.now()
        await self.partitions.ensure_window(now)
        return await self.partitions.drop_expired(now)

    async def _every(
        self,
        what: str,
        interval: float,
        work: Callable[[], Awaitable[object]],
        *,
        wait_first: bool = False,
    ) -> None:
        if wait_first:
            await asyncio.sleep(interval)
        while True:
            try:
                await work()
            except _PASS_ERRORS as exc:
                log.warning("%s pass failed, retried in %.0fs: %r", what, interval, exc)
            await asyncio.sleep(interval)

    async def run_partitions(self, interval: float) -> None:
        # prepare() made the partitions at start: the first pass (and any drop) comes one
        # interval later, so replicas starting together run no DDL against each other's writes.
        await self._every("partition", interval, self.partitions_once, wait_first=True)

    async def run_rollups(self, interval: float) -> None:
        await self._every("rollup", interval, lambda: self.rollup.run_once(self._clock.now()))

    async def run_compaction(self, interval: float) -> None:
        """Packing closed raw days, then rebuilding closed partitions' indexes."""
        await self._every(
            "compaction",
            interval,
            lambda: self.compaction.run_once(self._clock.now()),
            wait_first=True,
        )

    async def run_copier(self) -> None:
        """Move the old table step by step, pausing between steps so ingest keeps the pool."""
        while not self.copier.done:
            try:
                moved = await self.copier.step(self._clock.now())
            except _PASS_ERRORS as exc:
                log.warning("moving old samples paused: %r", exc)
                moved = 0
            if moved == 0:
                await asyncio.sleep(5.0)
            elif moved is not None:
                await asyncio.sleep(COPIER_PAUSE_SECONDS)
