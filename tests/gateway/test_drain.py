"""A gateway process told to stop (SIGTERM) fails readiness at once, keeps serving for its drain
time so load balancers can stop sending, then finishes and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp

from devstack.ports import free_ports
from tests.stack import Environment, client_session, running_stack

ROOT = Path(__file__).resolve().parents[2]
DRAIN_SECONDS = 2.0


async def status(http: aiohttp.ClientSession, url: str) -> int | None:
    try:
        async with http.get(url) as response:
            return response.status
    except aiohttp.ClientError:
        return None


async def test_sigterm_fails_readiness_then_drains_then_exits(env: Environment) -> None:
    (port,) = free_ports(1)
    async with running_stack(env, gateways=0) as stack, client_session(env) as http:
        settings = env.gateway_env(
            stack.backends,
            LISTEN_HOST="127.0.0.1",
            HTTPS_PORT=str(port),
            SHUTDOWN_DRAIN_SECONDS=str(DRAIN_SECONDS),
            SHUTDOWN_GRACE_SECONDS="2",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway", env={**os.environ, **settings}, cwd=ROOT,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        url = f"https://localhost:{port}"
        try:
            async with asyncio.timeout(30):
                # Polling another process over HTTP: there is no event to wait on.
                while await status(http, f"{url}/readyz") != 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
            process.send_signal(signal.SIGTERM)
            stopped_at = time.monotonic()
            async with asyncio.timeout(DRAIN_SECONDS):
                while await status(http, f"{url}/readyz") != 503:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            # Not ready, but still serving, on new connections too.
            async with client_session(env) as fresh:
                assert await status(fresh, f"{url}/healthz") == 200
            assert await asyncio.wait_for(process.wait(), 15) == 0
            assert time.monotonic() - stopped_at >= DRAIN_SECONDS
            assert await status(http, f"{url}/healthz") is None  # gone once drained
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
