"""Redis down: rotation still takes effect, gateways fail safe, and recover by themselves."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from key_service.errors import InvalidationNotPublished
from key_service.outbox import RELAY_AFTER_SECONDS
from scout_admin.commands import Admin, open_admin
from tests.admin_support import admin_settings
from tests.gateway.keys_support import new_server, rotate, whoami_status
from tests.stack import Environment, Gateway, client_session, eventually, leased, running_stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unsubscribed(gateway: Gateway) -> Callable[[], bool]:
    return lambda: not gateway.listener.subscribed.is_set()


class PrivateRedis:
    """A redis-server of the test's own, so it can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is required for this test (Debian package redis-server)")
        self._binary = binary
        self._dir = directory
        self.port = _free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._dir),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.02)
        pytest.fail("private redis-server did not start")

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(10)
            self._proc = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    yield server
    server.stop()


async def test_rotation_holds_while_redis_is_down_and_caching_resumes(
    env: Environment, admin: Admin, private_redis: PrivateRedis
) -> None:
    server = await new_server(admin)
    local = dataclasses.replace(env, redis_url=private_redis.url)
    async with (
        running_stack(local, gateways=2) as stack,
        client_session(env) as http,
        open_admin(admin_settings(local)) as local_admin,
    ):
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 200
        private_redis.stop()
        for gateway in stack.gateways:
            await eventually(unsubscribed(gateway))
            assert not gateway.key_cache.trusted
        # Committed, but not reported done: the gateways cannot be told (the API answers 503).
        with pytest.raises(InvalidationNotPublished):
            await rotate(local_admin, server)
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 401
            assert len(gateway.key_cache) == 0  # no lease: every request was checked

        private_redis.start()
        for gateway in stack.gateways:
            await asyncio.wait_for(gateway.listener.subscribed.wait(), 15)
            await eventually(leased(gateway))
        # The key service's relay publishes what the failed rotation left in the outbox.
        async with asyncio.timeout(RELAY_AFTER_SECONDS + 10):
            while await _outbox_rows(local_admin, server.server_id):  # noqa: ASYNC110 - a table
                await asyncio.sleep(0.2)
        new_key = await rotate(local_admin, server)  # the retry the 503 asked for
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 401
            assert await whoami_status(http, gateway.url, new_key) == 200
            assert gateway.key_cache.trusted and len(gateway.key_cache) == 1
        # Invalidations flow again.
        newest = await rotate(local_admin, server)
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, new_key) == 401
            assert await whoami_status(http, gateway.url, newest) == 200


async def _outbox_rows(admin: Admin, server_id: str) -> int:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT count(*) FROM keys.invalidation_outbox WHERE server_id = %s", (server_id,)
        )
        (count,) = await cur.fetchone()
        return int(count)
