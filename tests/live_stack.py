"""A real stack served from a background thread's event loop, for tests driven synchronously
(hypothesis over raw sockets, schemathesis' requests client, gRPC fuzzing), and the account such
a test works with."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeVar

from auth_service.users import UserRecord
from key_service.domain import Created
from scout_admin.commands import open_admin
from tests.admin_support import admin_settings
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.stack import Environment

T = TypeVar("T")
START_SECONDS = 60.0


@dataclass(frozen=True)
class Account:
    """A user with one server, made through the admin tool."""

    email: str
    user: UserRecord
    created: Created
    key_id: str  # of the server's key


async def new_account(env: Environment, server_name: str = "fuzzed") -> Account:
    """Migrate the test's database and make a user with one server."""
    settings = admin_settings(env)
    async with open_admin(settings) as admin:
        await admin.migrate()
        email = unique_email()
        user = await admin.create_user(email, STRONG_PASSWORD, None)
        created = await admin.create_server(email, server_name)
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT id::text FROM keys.api_keys WHERE server_id = %s", (created.server.id,)
            )
            (key_id,) = await cur.fetchone()
    return Account(email, user, created, key_id)


@contextlib.contextmanager
def on_background_loop(start: Callable[[], AbstractAsyncContextManager[T]]) -> Iterator[T]:
    """Enter `start()` on a new event loop in a daemon thread, yield what it yields, and leave
    it (on that loop) when the test is done. A failure to start is the test's error, with the
    cause, not an exception lost in the thread."""
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    shared: dict[str, Any] = {}

    async def main() -> None:
        try:
            async with start() as value:
                shared["value"] = value
                ready.set()
                await stop.wait()
        except Exception as exc:  # reported by the test's thread below
            shared["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(START_SECONDS)
    try:
        if "value" not in shared:
            raise RuntimeError(f"the stack did not start: {shared.get('error')!r}")
        yield shared["value"]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(START_SECONDS)
        loop.close()
        if "error" in shared and "value" in shared:
            raise RuntimeError(f"the stack failed while stopping: {shared['error']!r}")


class _ErrorRecords(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def error_records() -> Iterator[list[logging.LogRecord]]:
    """Every ERROR record of any logger while inside."""
    records: list[logging.LogRecord] = []
    handler = _ErrorRecords(records)
    logging.getLogger().addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger().removeHandler(handler)
