"""Stopping background tasks for certain.

Python 3.11's `asyncio.wait_for` loses a cancellation that arrives just as the awaited result does
(CPython gh-86296, fixed in 3.12), and aiopg awaits every query through it: a task cancelled once,
at that instant, runs on as if nothing happened, and whoever awaits it waits for good. That was
the ingest service's rare hang on stop. `cancel_and_wait` cancels again until the task is done,
and never swallows a cancellation of its own caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# How long a cancelled task may take to finish before it is cancelled again.
RECANCEL_SECONDS = 0.1


async def cancel_and_wait(*tasks: asyncio.Task[Any]) -> None:
    """Cancel `tasks` and return once every one has finished; one that ended with an error
    (rather than by the cancellation) is logged, so nothing is left unretrieved."""
    pending = {task for task in tasks if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        # asyncio.wait cancels none of them if this caller is itself cancelled, and raises.
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.warning("background task %s had failed: %r", task.get_name(), error)


def start_background(
    resources: contextlib.AsyncExitStack, name: str, work: Coroutine[Any, Any, None]
) -> None:
    """Run `work` as a task that is stopped for certain when `resources` closes."""
    task = asyncio.create_task(work, name=name)
    resources.push_async_callback(cancel_and_wait, task)
