"""The servers under test, each in its own process, started through its real entry point.

A process gets a free port chosen here (bind to port 0, read it, release it), is polled until it
is ready, and is stopped with SIGTERM so it drains like in production. Its output goes to a log
file in the run's work directory; when a process fails to start, the tail of that log is shown.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from scout_kit.grpc_client import create_channel
from scout_kit.tls import TlsMaterial

REPO_ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class StartFailed(RuntimeError):
    """A server process exited or did not become ready; the message carries its log's tail."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class ServerProcess:
    name: str
    port: int
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu_seconds(self) -> float | None:
        """User plus system CPU time the process has used so far (Linux /proc), else None."""
        try:
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat.rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def check_alive(self) -> None:
        code = self.popen.poll()
        if code is not None:
            raise StartFailed(
                f"{self.name} exited with status {code}; its log ends with:\n{self.log_tail()}"
            )

    async def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(self.popen.wait, STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        await asyncio.to_thread(self.popen.wait)


@dataclass
class Fleet:
    """Every process of the run; `stop_all` stops them in reverse order of start."""

    workdir: Path
    client_ssl: ssl.SSLContext
    # Our certificate for the services' gRPC ports (mutual TLS).
    client_tls: TlsMaterial
    processes: list[ServerProcess] = field(default_factory=list)

    def _spawn(
        self, name: str, argv: list[str], env: Mapping[str, str], port: int
    ) -> ServerProcess:
        log_path = self.workdir / f"{name}.log"
        full_env = {**os.environ, **env, "PYTHONUNBUFFERED": "1"}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
                [sys.executable, *argv],
                cwd=REPO_ROOT,
                env=full_env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = ServerProcess(name, port, popen, log_path)
        self.processes.append(process)
        return process

    def spawn_grpc(
        self, name: str, module: str, env: Mapping[str, str], *, profile_to: Path | None = None
    ) -> ServerProcess:
        port = free_port()
        argv = ["-m", module]
        if profile_to is not None:
            argv = ["-m", "cProfile", "-o", str(profile_to), *argv]
        return self._spawn(name, argv, {**env, "LISTEN_ADDR": f"127.0.0.1:{port}"}, port)

    def spawn_https(
        self, name: str, module: str, env: Mapping[str, str], *, profile_to: Path | None = None
    ) -> ServerProcess:
        port = free_port()
        argv = ["-m", module]
        if profile_to is not None:
            argv = ["-m", "cProfile", "-o", str(profile_to), *argv]
        return self._spawn(name, argv, {**env, "HTTPS_PORT": str(port)}, port)

    async def wait_grpc_ready(self, process: ServerProcess) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        async with create_channel(process.address, self.client_tls) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            while True:
                process.check_alive()
                with contextlib.suppress(grpc.aio.AioRpcError):
                    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                self._check_deadline(process, deadline)
                await asyncio.sleep(0.1)

    async def wait_https_ready(self, process: ServerProcess, path: str, expect: str = "") -> None:
        """Poll `path` until it answers 200 (and its body contains `expect`)."""
        deadline = time.monotonic() + START_TIMEOUT
        connector = aiohttp.TCPConnector(ssl=self.client_ssl, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as session:
            while True:
                process.check_alive()
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(
                        process.url + path, timeout=aiohttp.ClientTimeout(total=2)
                    ) as response:
                        body = await response.text()
                        if response.status == 200 and expect in body:
                            return
                self._check_deadline(process, deadline)
                await asyncio.sleep(0.1)

    @staticmethod
    def _check_deadline(process: ServerProcess, deadline: float) -> None:
        if time.monotonic() > deadline:
            raise StartFailed(
                f"{process.name} was not ready after {START_TIMEOUT:.0f}s; its log ends with:\n"
                f"{process.log_tail()}"
            )

    async def stop_all(self) -> None:
        for process in reversed(self.processes):
            await process.stop()
        self.processes.clear()
