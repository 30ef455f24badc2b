"""The gateway's batcher: a lone post goes at once, posts that wait share a call, and closing
sends what is waiting."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from gateway.backends import Backends
from gateway.ingest_batcher import IngestBatcher
from scout.ingest.v1 import ingest_pb2


class FakeIngest:
    def __init__(self) -> None:
        self.calls: list[int] = []
        self.release = asyncio.Event()
        self.release.set()
        # Calls from the second on wait for this one too.
        self.release_later = asyncio.Event()
        self.release_later.set()

    async def WriteBatch(
        self, request: ingest_pb2.WriteBatchRequest, **_: Any
    ) -> ingest_pb2.WriteBatchResponse:
        self.calls.append(len(request.entries))
        await self.release.wait()
        if len(self.calls) > 1:
            await self.release_later.wait()
        return ingest_pb2.WriteBatchResponse(
            results=[ingest_pb2.EntryResult(accepted=len(e.values)) for e in request.entries]
        )


class FakeBackends:
    def __init__(self) -> None:
        self.ingest = FakeIngest()
        self.timeout = 5.0

    def service_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()


def entry(values: int = 2) -> ingest_pb2.SampleColumns:
    return ingest_pb2.SampleColumns(
        sample_ts_micros=[1], sample_sizes=[values], names=["a"] * values, values=[1.0] * values
    )


def batcher(backends: FakeBackends, linger: float) -> IngestBatcher:
    return IngestBatcher(cast(Backends, backends), linger=linger)


async def test_a_lone_post_is_sent_at_once() -> None:
    backends = FakeBackends()
    result = await asyncio.wait_for(batcher(backends, linger=60).write(entry()), 5)
    assert result.accepted == 2 and backends.ingest.calls == [1]


async def test_posts_that_wait_for_a_call_share_the_next() -> None:
    backends = FakeBackends()
    subject = batcher(backends, linger=0)
    backends.ingest.release.clear()
    first = asyncio.create_task(subject.write(entry()))
    await asyncio.sleep(0)
    others = [asyncio.create_task(subject.write(entry())) for _ in range(3)]
    await asyncio.sleep(0)
    backends.ingest.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, *others), 5)
    assert [r.accepted for r in results] == [2, 2, 2, 2]
    assert backends.ingest.calls == [1, 3]


async def test_under_load_the_next_call_waits_for_a_batch_as_large_and_close_sends_it() -> None:
    backends = FakeBackends()
    subject = batcher(backends, linger=60)
    backends.ingest.release.clear()
    backends.ingest.release_later.clear()
    first = asyncio.create_task(subject.write(entry()))
    await asyncio.sleep(0)
    second = [asyncio.create_task(subject.write(entry())) for _ in range(3)]
    await asyncio.sleep(0)
    assert backends.ingest.calls == [1]
    backends.ingest.release.set()
    await asyncio.wait_for(first, 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert backends.ingest.calls == [1, 3]  # the three that waited, in one call
    waiting = asyncio.create_task(subject.write(entry()))
    await asyncio.sleep(0)
    backends.ingest.release_later.set()
    await asyncio.wait_for(asyncio.gather(*second), 5)
    for _ in range(5):
        await asyncio.sleep(0)
    assert backends.ingest.calls == [1, 3]  # fewer than last time: it lingers
    await asyncio.wait_for(subject.close(), 5)
    assert (await waiting).accepted == 2
    assert backends.ingest.calls == [1, 3, 1]
