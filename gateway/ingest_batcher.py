"""Coalescing agent posts into few WriteBatch calls to the ingest service.

One gRPC call per HTTP request costs more than the rest of a post, so posts that arrive while
earlier calls are in flight share the next call: at most `max_in_flight` calls run at once and
each carries everything that queued meanwhile (up to `max_batch_values`). Under load the next call
waits up to `linger` for as many values as the last one carried, since a call's fixed cost (in the
gateway, the ingest service and PostgreSQL's commit) is most of a post's. A post that finds no call
in flight is sent at once, so batching adds no latency when idle. Each caller waits for its own
entry's result, which the ingest service gives only after the group transaction holding it is
committed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web

from gateway.app_keys import BACKENDS, METRICS, SETTINGS
from gateway.backends import Backends
from gateway.observability import BatchStats
from scout.ingest.v1 import ingest_pb2


class BatcherFull(Exception):
    """Too many values are waiting for the ingest service already."""


class BatcherClosed(Exception):
    """The gateway is stopping."""


@dataclass
class _Entry:
    columns: ingest_pb2.SampleColumns
    values: int
    result: asyncio.Future[ingest_pb2.EntryResult]


class IngestBatcher:
    def __init__(
        self,
        backends: Backends,
        *,
        # INGEST_CALLS_IN_FLIGHT (gateway.settings)
        max_in_flight: int,
        max_batch_values: int = 50_000,
        max_pending_values: int = 500_000,
        linger: float = 0.005,
        stats: BatchStats | None = None,
    ) -> None:
        self._backends = backends
        self.stats = stats or BatchStats()
        self._max_in_flight = max_in_flight
        self._max_batch = max_batch_values
        self._max_pending = max_pending_values
        self._pending: deque[_Entry] = deque()
        self._pending_values = 0
        self._calls: set[asyncio.Task[None]] = set()
        self._closed = False
        self._linger = linger
        # Under load (a call just finished) the next one waits up to `linger` for as many
        # values as the last one carried, so batches keep their size; when idle a post goes
        # at once.
        self._target = 0
        self._timer: asyncio.TimerHandle | None = None

    async def write(self, columns: ingest_pb2.SampleColumns) -> ingest_pb2.EntryResult:
        """The ingest service's answer for this post, once its transaction is committed."""
        if self._closed:
            raise BatcherClosed
        values = len(columns.values)
        if self._pending and self._pending_values + values > self._max_pending:
            self.stats.refused_posts += 1
            raise BatcherFull
        entry = _Entry(columns, values, asyncio.get_running_loop().create_future())
        self._pending.append(entry)
        self._pending_values += values
        if self._timer is None or self._pending_values >= self._target:
            self._dispatch()
        # Not shielded (a shield costs two futures per post): if this wait is cancelled the
        # future is, and `_call` skips answering it; the entry is still sent with its call.
        return await entry.result

    @property
    def pending_values(self) -> int:
        return self._pending_values

    @property
    def calls_in_flight(self) -> int:
        return len(self._calls)

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending and len(self._calls) < self._max_in_flight:
            batch: list[_Entry] = []
            values = 0
            while self._pending and (
                not batch or values + self._pending[0].values <= self._max_batch
            ):
                entry = self._pending.popleft()
                batch.append(entry)
                values += entry.values
            self._pending_values -= values
            self._target = values
            self.stats.sent(len(batch), values)
            task = asyncio.create_task(self._call(batch), name="ingest-write-batch")
            self._calls.add(task)
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._calls.discard(task)
        if self._closed or self._pending_values >= self._target or self._linger <= 0:
            self._dispatch()
        elif self._pending and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger, self._dispatch)

    async def _call(self, batch: list[_Entry]) -> None:
        backends = self._backends
        try:
            response: ingest_pb2.WriteBatchResponse = await backends.ingest.WriteBatch(
                ingest_pb2.WriteBatchRequest(entries=[e.columns for e in batch]),
                metadata=backends.service_metadata(),
                timeout=backends.timeout,
            )
            if len(response.results) != len(batch):
                raise RuntimeError("WriteBatch answered a different number of entries")
        except Exception as exc:
            for entry in batch:
                if not entry.result.done():
                    entry.result.set_exception(exc)
                    entry.result.exception()  # retrieved, even if the caller went away
            return
        for entry, result in zip(batch, response.results, strict=True):
            if not entry.result.done():
                entry.result.set_result(result)

    async def close(self) -> None:
        """Refuse new posts and wait for the calls carrying accepted ones."""
        self._closed = True
        self._dispatch()
        while self._calls:
            with contextlib.suppress(Exception):
                await asyncio.gather(*self._calls)


BATCHER = web.AppKey("ingest_batcher", IngestBatcher)


async def batcher_context(app: web.Application) -> AsyncIterator[None]:
    """The batcher's lifetime, inside the backends' context: it is closed (its accepted posts
    answered) before the channels are."""
    batcher = IngestBatcher(
        app[BACKENDS],
        max_in_flight=app[SETTINGS].ingest_calls_in_flight,
        stats=app[METRICS].batches,
    )
    app[METRICS].watch_batcher(batcher)
    app[BATCHER] = batcher
    yield
    await batcher.close()
