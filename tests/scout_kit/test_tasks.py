"""cancel_and_wait stops a task even when one cancellation is lost (as Python 3.11's wait_for
loses it), and leaves its own caller cancellable."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from scout_kit.tasks import cancel_and_wait


async def _loses_one_cancellation(started: asyncio.Event) -> None:
    """Behaves as a loop whose first cancellation was lost: it carries on, then obeys."""
    started.set()
    with contextlib.suppress(asyncio.CancelledError):  # the lost one
        await asyncio.sleep(3600)
    await asyncio.sleep(3600)


async def test_a_task_that_lost_a_cancellation_is_stopped() -> None:
    started = asyncio.Event()
    task = asyncio.create_task(_loses_one_cancellation(started))
    await started.wait()
    async with asyncio.timeout(5):
        await cancel_and_wait(task)
    assert task.cancelled()


async def test_finished_and_failed_tasks_are_fine_and_a_failure_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fail() -> None:
        raise ValueError("broken")

    done = asyncio.create_task(asyncio.sleep(0))
    failed = asyncio.create_task(fail())
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="scout_kit.tasks"):
        await cancel_and_wait(done, failed)
    assert "broken" in caplog.text


async def test_the_caller_stays_cancellable() -> None:
    started, may_stop = asyncio.Event(), asyncio.Event()

    async def stubborn() -> None:
        started.set()
        while not may_stop.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue  # ignores every cancellation until told otherwise

    task = asyncio.create_task(stubborn())
    await started.wait()
    stopping = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.3)
    assert not stopping.done()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not task.done()
    may_stop.set()
    task.cancel()
    await task
