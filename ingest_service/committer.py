"""Group commit: the writes of many requests go into one transaction.

Requests queue their writes and wait; `writers` tasks each take everything queued (up to
`max_batch_values`), store it in one transaction and only then wake the requests, so nothing is
acknowledged before it is committed. A transaction that finds no partition for a sample (the
clock ran ahead of the partition pass) gets the partitions made and is run once more. While a
commit runs, the next group gathers, so batches grow with the load and a transaction's fixed
cost is shared. The queue is bounded in values: past the
bound a write is refused at once (`QueueFull`, answered RESOURCE_EXHAUSTED) instead of waiting
without limit. `close()` refuses new writes and commits everything already accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from ingest_service.errors import QueueFull, ShuttingDown
from ingest_service.repository import NO_PARTITION, SampleRepository
from ingest_service.samples import Write
from scout_kit.clock import Clock
from scout_kit.tasks import cancel_and_wait

log = logging.getLogger(__name__)


def _at(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


class CommitObserver(Protocol):
    """Told about every group transaction and refusal (metrics: ingest_service.metrics)."""

    def committed(self, requests: int, values: int, seconds: float) -> None: ...

    def failed(self, requests: int, values: int, seconds: float) -> None: ...

    def refused(self, values: int) -> None: ...


class _Unobserved:
    def committed(self, requests: int, values: int, seconds: float) -> None:
        pass

    def failed(self, requests: int, values: int, seconds: float) -> None:
        pass

    def refused(self, values: int) -> None:
        pass


@dataclass
class _Pending:
    writes: Sequence[Write]
    values: int
    done: asyncio.Future[None]


class GroupCommitter:
    def __init__(
        self,
        repository: SampleRepository,
        clock: Clock,
        *,
        max_queued_values: int,
        max_batch_values: int,
        writers: int,
        observer: CommitObserver | None = None,
        make_room: Callable[[datetime, datetime], Awaitable[None]] | None = None,
    ) -> None:
        self._repo = repository
        self._observer: CommitObserver = observer or _Unobserved()
        self._make_room = make_room
        self._clock = clock
        self._max_queued = max_queued_values
        self._max_batch = max_batch_values
        self._queue: deque[_Pending] = deque()
        self._queued_values = 0
        self._wakeup = asyncio.Event()
        self._idle = asyncio.Event()
        self._closing = False
        self._busy = 0
        self._writers = [
            asyncio.create_task(self._writer(), name=f"ingest-group-commit-{i}")
            for i in range(writers)
        ]

    async def submit(self, writes: Sequence[Write]) -> None:
        """Return once every write is committed; raise QueueFull or ShuttingDown at once when
        the writes are not accepted (then nothing of them is stored)."""
        if self._closing:
            raise ShuttingDown
        values = sum(len(w) for w in writes)
        # An empty queue takes any single request, so a large one is never refused forever.
        if self._queue and self._queued_values + values > self._max_queued:
            self._observer.refused(values)
            raise QueueFull
        pending = _Pending(writes, values, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        self._queued_values += values
        self._wakeup.set()
        # A cancelled caller (deadline, client gone) does not withdraw accepted writes: they
        # stay queued and are committed; the future is only how the caller learns of it.
        await asyncio.shield(pending.done)

    @property
    def queued_values(self) -> int:
        return self._queued_values

    @property
    def queued_requests(self) -> int:
        return len(self._queue)

    @property
    def transactions_in_flight(self) -> int:
        return self._busy

    def _take(self) -> list[_Pending]:
        group: list[_Pending] = []
        values = 0
        while self._queue and (not group or values + self._queue[0].values <= self._max_batch):
            pending = self._queue.popleft()
            group.append(pending)
            values += pending.values
        self._queued_values -= values
        if not self._queue:
            self._wakeup.clear()
        return group

    async def _writer(self) -> None:
        while True:
            await self._wakeup.wait()
            group = self._take()
            if not group:
                continue
            self._busy += 1
            values = sum(p.values for p in group)
            started = self._clock.monotonic()
            try:
                await self._commit([w for p in group for w in p.writes])
            except Exception as exc:
                self._observer.failed(len(group), values, self._clock.monotonic() - started)
                log.warning("group commit of %d requests failed: %r", len(group), exc)
                for pending in group:
                    if not pending.done.done():
                        pending.done.set_exception(exc)
                        # Read it here too, so a caller that went away leaves no warning.
                        pending.done.exception()
            else:
                self._observer.committed(len(group), values, self._clock.monotonic() - started)
                for pending in group:
                    if not pending.done.done():
                        pending.done.set_result(None)
            finally:
                self._busy -= 1
                if not self._queue and not self._busy:
                    self._idle.set()

    async def _commit(self, writes: list[Write]) -> None:
        try:
            await self._repo.write(writes, self._clock.now())
        except Exception as exc:
            if getattr(exc, "pgcode", None) != NO_PARTITION or self._make_room is None:
                raise
            stamps = [stamp for write in writes for stamp in write.stamps]
            await self._make_room(_at(min(stamps)), _at(max(stamps)))
            await self._repo.write(writes, self._clock.now())

    async def close(self) -> None:
        """Refuse new writes, commit every accepted one, then stop the writers."""
        self._closing = True
        while self._queue or self._busy:
            self._idle.clear()
            await self._idle.wait()
        await cancel_and_wait(*self._writers)
