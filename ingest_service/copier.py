"""Moving the old one-row-per-value `samples` table into the time-series layout, online.

Migration 0003 creates the new tables and leaves the old one; this copier, run in the background
by the ingest service, moves it in steps. Each step is one transaction: lock the cursor row
(another replica holding it means that replica is copying), delete at most `batch_rows` old rows
of the time slice at the cursor, store them through the normal write statement (so a sample
already written in the new layout keeps its values and gains only the metrics it lacked), and
advance the cursor when the slice is empty. A crash or a stop rolls the step back; the next one
starts from the same cursor. At the live edge (old replicas of a rolling upgrade may still write)
the cursor returns to the oldest row left; when none is left the table is dropped. Each statement
has the maintenance statement_timeout; a step that ran out of time halves the batch of the next
(grown back after steps that did not).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from ingest_service.partitions import Partitions
from ingest_service.repository import SampleRepository
from ingest_service.samples import Write, micros
from scout_kit.db import StatementTimeout, bounded_transaction

log = logging.getLogger(__name__)


class SampleCopier:
    def __init__(
        self,
        repository: SampleRepository,
        partitions: Partitions,
        *,
        slice_width: timedelta = timedelta(minutes=10),
        batch_rows: int = 20_000,
    ) -> None:
        self._repo = repository
        self._partitions = partitions
        self._schema = repository.schema
        self._slice = slice_width
        self._batch_rows = batch_rows
        self._limit = batch_rows
        self.done = False

    async def step(self, now: datetime) -> int | None:
        """Move one batch; the number of old rows moved (0 while another replica copies or a
        slice was empty), None once the old table is gone."""
        limit = self._limit
        try:
            moved = await self._step(now, limit)
        except StatementTimeout:
            self._limit = max(1, limit // 2)
            log.warning(
                "moving %d old rows ran out of time; next step moves %d", limit, self._limit
            )
            raise
        self._limit = min(self._batch_rows, max(self._limit, limit * 2))
        return moved

    async def _step(self, now: datetime, limit: int) -> int | None:
        s = self._schema
        async with bounded_transaction(self._repo.pool, self._partitions.statement_timeout) as cur:
            await cur.execute(
                f"SELECT next_ts, done FROM {s}.samples_migration FOR UPDATE SKIP LOCKED"
            )
            state = await cur.fetchone()
            if state is None:
                return 0
            next_ts, done = state
            if done:
                self.done = True
                return None
            if next_ts is None:
                await cur.execute(f"SELECT min(ts) FROM {s}.samples")
                (next_ts,) = await cur.fetchone()
                if next_ts is None:
                    await cur.execute(f"DROP TABLE {s}.samples")
                    await cur.execute(f"UPDATE {s}.samples_migration SET done = true")
                    log.info("the old samples table is moved and dropped")
                    self.done = True
                    return None
            end = next_ts + self._slice
            await cur.execute(
                f"DELETE FROM {s}.samples WHERE ctid = ANY(ARRAY("
                f"SELECT ctid FROM {s}.samples WHERE ts >= %s AND ts < %s LIMIT %s))"
                " RETURNING server_id::text, name, ts, value",
                (next_ts, end, limit),
            )
            rows = await cur.fetchall()
            if len(rows) < limit:
                # The slice is empty after this batch; past the live edge, start again from
                # whatever old rows are left.
                next_ts = end if end <= now else None
            if rows:
                stamps = [ts for _, _, ts, _ in rows]
                await self._partitions.ensure("samples_raw", min(stamps), max(stamps))
                await self._repo.move(cur, _writes(rows))
            await cur.execute(
                f"UPDATE {s}.samples_migration SET next_ts = %s, moved = moved + %s",
                (next_ts, len(rows)),
            )
        return len(rows)

    async def run_to_end(self, now: datetime) -> int:
        """Every step until the old table is gone (tests and small installations)."""
        total = 0
        while (moved := await self.step(now)) is not None:
            total += moved
        return total


def _writes(rows: list[tuple[str, str, datetime, float]]) -> list[Write]:
    """Old rows as writes, one per server, one sample per time (names sorted)."""
    by_server: dict[str, dict[int, list[tuple[str, float]]]] = {}
    for server_id, name, ts, value in rows:
        by_server.setdefault(server_id, {}).setdefault(micros(ts), []).append((name, value))
    writes = []
    for server_id, samples in by_server.items():
        stamps: list[int] = []
        sizes: list[int] = []
        names: list[str] = []
        values: list[float] = []
        for stamp, metrics in samples.items():
            metrics.sort()
            stamps.append(stamp)
            sizes.append(len(metrics))
            names.extend(n for n, _ in metrics)
            values.extend(v for _, v in metrics)
        writes.append(Write(server_id, "", stamps, sizes, names, values))
    return writes
