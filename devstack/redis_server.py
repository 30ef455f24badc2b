"""A private Redis for `make run`: data in the data folder (append-only file, so the next run
keeps sessions and keys), started on a free loopback port, stopped with SHUTDOWN SAVE.

The append-only file is written before each reply and synced every second (`appendfsync
everysec`): a killed redis-server loses nothing it confirmed, a crashed machine at most a second."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import redis.asyncio as aioredis
import redis.exceptions

from devstack.ports import LOOPBACK

log = logging.getLogger("devstack")


class RedisStartError(Exception):
    """redis-server did not start or did not answer PING in time."""


class PrivateRedis:
    def __init__(self, program: Path, directory: Path, port: int) -> None:
        self.program = program
        self.directory = directory
        self.port = port
        self.log_file = directory / "redis.log"
        self.pid_file = directory / "redis.pid"
        self.process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            str(self.program),
            "--port", str(self.port),
            "--bind", LOOPBACK,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.directory.resolve()),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--dbfilename", "dump.rdb",
            "--pidfile", str(self.pid_file.resolve()),
            "--logfile", str(self.log_file.resolve()),
        ]  # fmt: skip

    def _client(self) -> aioredis.Redis:
        return aioredis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=1.0)

    async def start(self, within: float = 20.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        await stop_leftover(self.pid_file)
        self.process = await asyncio.create_subprocess_exec(
            *self.argv(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            process_group=0,  # a Ctrl-C on the terminal must not reach Redis before us
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            if self.process.returncode is not None:
                raise RedisStartError(
                    f"redis-server exited with code {self.process.returncode}; see {self.log_file}"
                )
            client = self._client()
            try:
                if await client.ping():
                    return
            except redis.exceptions.ConnectionError:
                pass
            finally:
                await client.aclose()
            if loop.time() > deadline:
                raise RedisStartError(f"redis-server did not answer within {within:.0f}s")
            await asyncio.sleep(0.1)

    async def wait_exit(self) -> int:
        if self.process is None:
            raise RuntimeError("redis-server was not started")
        return await self.process.wait()

    async def stop(self, kill_after: float = 10.0) -> None:
        """SHUTDOWN SAVE (the data is on disk when it returns), SIGTERM and SIGKILL as fallbacks."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        client = self._client()
        try:
            await client.shutdown(save=True)
        except redis.exceptions.RedisError as exc:
            log.warning("Redis SHUTDOWN SAVE failed (%s); sending SIGTERM", exc)
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
        finally:
            await client.aclose()
        try:
            async with asyncio.timeout(kill_after):  # not wait_for: see scout_kit.tasks
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def leftover_pid(pid_file: Path) -> int | None:
    """The pid of a redis-server still running from `pid_file`, or None."""
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    if sys.platform == "linux":
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None  # not running
        if b"redis-server" not in cmdline:
            return None  # the pid now belongs to something else
    return pid


async def stop_leftover(pid_file: Path) -> None:
    """Stop a redis-server an earlier, killed run left on this data folder: two servers writing
    one append-only file would corrupt it."""
    pid = leftover_pid(pid_file)
    if pid is None:
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return
    log.info("stopped a redis-server (pid %d) left running by an earlier run", pid)
    for _ in range(100):
        await asyncio.sleep(0.1)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return


@asynccontextmanager
async def running_redis(server: PrivateRedis) -> AsyncIterator[str]:
    try:
        await server.start()
        log.info("private Redis listening on %s:%d", LOOPBACK, server.port)
        yield server.url
    finally:
        if server.process is not None and server.process.returncode is None:
            log.info("stopping private Redis")
        await server.stop()
