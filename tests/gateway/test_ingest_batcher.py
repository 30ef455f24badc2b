"""The gateway's batcher: a lone post goes at once, posts that wait share a call, and closing
sends what is waiting."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from gateway.backends import Backends
from gateway.ingest_batcher import BatcherClosed, IngestBatcher
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


def batcher(backends: FakeBackends, linger: float, in_flight: int = 1) -> IngestBatcher:
    return IngestBatcher(cast(Backends, backends), max_in_flight=in_flight, linger=linger)


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


class GatedIngest:
    """Each call waits for its own gate; calls whose number is in `failing` fail."""

    def __init__(self, failing: frozenset[int] = frozenset()) -> None:
        self.calls: list[list[float]] = []
        self.gates: list[asyncio.Event] = []
        self.failing = failing

    async def WriteBatch(
        self, request: ingest_pb2.WriteBatchRequest, **_: Any
    ) -> ingest_pb2.WriteBatchResponse:
        number = len(self.calls)
        self.calls.append([e.values[0] for e in request.entries])
        gate = asyncio.Event()
        self.gates.append(gate)
        await gate.wait()
        if number in self.failing:
            raise ConnectionError(f"call {number} failed")
        return ingest_pb2.WriteBatchResponse(
            results=[ingest_pb2.EntryResult(accepted=int(e.values[0])) for e in request.entries]
        )


def marked(mark: int) -> ingest_pb2.SampleColumns:
    """A one-value post whose value (echoed back as `accepted`) says which post it is."""
    return ingest_pb2.SampleColumns(
        sample_ts_micros=[1], sample_sizes=[1], names=["a"], values=[float(mark)]
    )


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def post_one_by_one(
    subject: IngestBatcher, marks: list[int]
) -> list[asyncio.Task[ingest_pb2.EntryResult]]:
    """Each post sent, and its call started, before the next is."""
    posts = []
    for mark in marks:
        posts.append(asyncio.create_task(subject.write(marked(mark))))
        await settle()
    return posts


async def test_several_calls_run_at_once_and_each_post_gets_its_own_answer() -> None:
    backends = FakeBackends()
    ingest = GatedIngest()
    backends.ingest = ingest  # type: ignore[assignment]
    subject = batcher(backends, linger=0, in_flight=2)
    posts = await post_one_by_one(subject, [1, 2])
    assert ingest.calls == [[1.0], [2.0]] and subject.calls_in_flight == 2
    posts += [asyncio.create_task(subject.write(marked(m))) for m in (3, 4, 5)]
    await settle()
    assert len(ingest.calls) == 2 and subject.pending_values == 3  # both places taken
    ingest.gates[1].set()  # the second call ends first: its place goes to the waiting posts
    await settle()
    assert ingest.calls[2] == [3.0, 4.0, 5.0] and not posts[0].done()
    ingest.gates[0].set()
    ingest.gates[2].set()
    results = await asyncio.wait_for(asyncio.gather(*posts), 5)
    assert [r.accepted for r in results] == [1, 2, 3, 4, 5]


async def test_a_failed_call_fails_only_its_own_posts() -> None:
    backends = FakeBackends()
    ingest = GatedIngest(failing=frozenset({0}))
    backends.ingest = ingest  # type: ignore[assignment]
    subject = batcher(backends, linger=0, in_flight=2)
    first, second = await post_one_by_one(subject, [1, 2])
    ingest.gates[0].set()
    await settle()
    assert isinstance(first.exception(), ConnectionError) and not second.done()
    ingest.gates[1].set()
    assert (await asyncio.wait_for(second, 5)).accepted == 2


async def test_close_waits_for_every_call_in_flight_and_sends_what_waits() -> None:
    backends = FakeBackends()
    ingest = GatedIngest()
    backends.ingest = ingest  # type: ignore[assignment]
    subject = batcher(backends, linger=60, in_flight=2)
    posts = await post_one_by_one(subject, [1, 2, 3])
    closing = asyncio.create_task(subject.close())
    await settle()
    assert not closing.done() and len(ingest.calls) == 2
    ingest.gates[0].set()
    await settle()
    assert ingest.calls[2] == [3.0] and not closing.done()
    ingest.gates[1].set()
    await settle()
    assert not closing.done()  # the third call is still in flight
    ingest.gates[2].set()
    await asyncio.wait_for(closing, 5)
    assert [p.result().accepted for p in posts] == [1, 2, 3]
    with pytest.raises(BatcherClosed):
        await subject.write(marked(4))
