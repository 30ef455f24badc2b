"""Helpers for the agent tests: env files, the agent in a thread, a gateway on a fixed port (so
it can be stopped and brought back), and what PostgreSQL stored."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from aiohttp import web

from gateway.app import create_app, create_ssl_context
from gateway.app_keys import LISTENER
from gateway.settings import Settings as GatewaySettings
from scout_admin.commands import Admin
from scout_agent.agent import Agent, Log
from scout_agent.collect import Metrics
from scout_agent.envfile import write_atomic
from tests.stack import Environment, Gateway

WAIT_SECONDS = 20.0
# (metric name, time in ms, value)
Row = tuple[str, int, float]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def env_text(api_key: str, url: str, spool_dir: Path, ca_file: str | None, **extra: str) -> str:
    lines = [
        "# written by the agent tests",
        f"SCOUTAPIKEY={api_key}",
        f"SCOUTURL={url}",
        f"SCOUTSPOOLDIR={spool_dir}",
    ]
    if ca_file is not None:
        lines.append(f"SCOUTCAFILE={ca_file}")
    lines += [f"{name}={value}" for name, value in extra.items()]
    return "\n".join(lines) + "\n"


def write_env(path: Path, text: str, mode: int = 0o600) -> Path:
    write_atomic(str(path), text, mode)
    return path


class RecordingLog(Log):
    """The agent's log lines, kept for assertions (and written to a buffer, not stderr)."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.lines: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, level: str, message: str) -> None:
        with self._lock:
            self.lines.append(f"{time.monotonic():.2f} {level}: {message}")

    def text(self) -> str:
        with self._lock:
            return "\n".join(self.lines)


@dataclass
class Produced:
    """Every (name, time, value) the agent collected, in order."""

    rows: list[Row] = field(default_factory=list)
    samples: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, ts_ms: int, metrics: Metrics) -> None:
        with self.lock:
            self.samples += 1
            self.rows += [(name, ts_ms, float(value)) for name, value in metrics.items()]

    def snapshot(self) -> set[Row]:
        with self.lock:
            return set(self.rows)


@contextlib.contextmanager
def agent_thread(env_file: Path) -> Iterator[tuple[Agent, Produced, RecordingLog]]:
    """The agent's real loop in a thread (the test's event loop keeps serving the gateway)."""
    produced = Produced()
    log = RecordingLog()
    agent = Agent(str(env_file), log=log, observer=produced)
    thread = threading.Thread(target=agent.run, name="scout-agent", daemon=True)
    thread.start()
    try:
        yield agent, produced, log
    finally:
        agent.stop()
        thread.join(timeout=30)
        agent.close()
        assert not thread.is_alive(), "the agent did not stop"


async def start_gateway_at(env: Environment, backends: Mapping[str, str], port: int) -> Gateway:
    """A gateway on a port the test chose, so it can be stopped and started again there."""
    settings = GatewaySettings.from_env(env.gateway_env(backends))
    app = create_app(settings)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(
        runner, "127.0.0.1", port, ssl_context=create_ssl_context(settings), reuse_address=True
    )
    await site.start()
    await app[LISTENER].subscribed.wait()
    return Gateway(app, runner, f"https://localhost:{port}")


@contextlib.asynccontextmanager
async def gateway_at(
    env: Environment, backends: Mapping[str, str], port: int
) -> AsyncIterator[Gateway]:
    gateway = await start_gateway_at(env, backends, port)
    try:
        yield gateway
    finally:
        await gateway.runner.cleanup()


async def stored(admin: Admin, server_id: str) -> set[Row]:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT name, round(extract(epoch FROM ts) * 1000)::bigint, value "
            "FROM ingest.sample_values WHERE server_id = %s",
            (server_id,),
        )
        return {(name, int(ts), float(value)) for name, ts, value in await cur.fetchall()}


async def wait_for(condition: Callable[[], bool]) -> None:
    """Poll plain state another thread changes (no timing is asserted, only the outcome)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while not condition():  # noqa: ASYNC110 - the agent's thread has no event to await
            await asyncio.sleep(0.05)


async def wait_stored(admin: Admin, server_id: str, expected: Callable[[], set[Row]]) -> set[Row]:
    """Wait until everything in `expected()` is stored; returns what is stored."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            rows = await stored(admin, server_id)
            if expected() <= rows:
                return rows
            await asyncio.sleep(0.1)


def spool_files(spool_dir: Path) -> list[str]:
    return sorted(
        name
        for name in os.listdir(spool_dir)
        if name.endswith(".json") and name != "state.json" and not name.startswith(".")
    )


def spooled(spool_dir: Path) -> set[Row]:
    """What the agent collected and has not had accepted yet (it sends it when it starts again)."""
    rows: set[Row] = set()
    for name in spool_files(spool_dir):
        for sample in json.loads((spool_dir / name).read_bytes()):
            ts_ms = round(datetime.fromisoformat(sample["ts"]).timestamp() * 1000)
            rows |= {(metric, ts_ms, float(value)) for metric, value in sample["metrics"].items()}
    return rows


async def assert_each_sample_once(
    admin: Admin, server_id: str, produced: Produced, spool_dir: Path
) -> None:
    """Once the agent has stopped: everything stored was collected, with the value collected, and
    everything collected is stored or still waiting in the spool. A stop can fall between a
    collection and its send, so the newest samples may wait; none is lost. Stored rows are unique
    by the primary key (server, metric, time), so resent samples could not be stored twice."""
    rows = await stored(admin, server_id)
    collected = produced.snapshot()
    assert len(collected) == len(produced.rows), "the agent collected a (metric, time) twice"
    assert rows <= collected, "stored something the agent did not collect"
    assert collected - rows <= spooled(spool_dir), "a collected sample was lost"
