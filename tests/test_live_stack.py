"""The background-loop helper that the synchronous (fuzzing, schemathesis) tests stand on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections.abc import AsyncIterator

import pytest

from tests.live_stack import on_background_loop


def test_the_value_is_served_from_another_thread_and_left_at_the_end() -> None:
    left = threading.Event()

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[tuple[int, asyncio.AbstractEventLoop]]:
        try:
            yield threading.get_ident(), asyncio.get_running_loop()
        finally:
            left.set()

    with on_background_loop(serve) as (thread_id, loop):
        assert thread_id != threading.get_ident()
        assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "ok"), loop).result(5) == "ok"
        assert not left.is_set()
    assert left.is_set()


def test_a_stack_that_cannot_start_fails_the_test_with_its_cause() -> None:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[None]:
        await asyncio.open_connection("127.0.0.1", port)  # refused
        yield

    expected = r"did not start: ConnectionRefusedError"
    with pytest.raises(RuntimeError, match=expected), on_background_loop(serve):
        pytest.fail("entered a stack that did not start")
