"""Waiting until replicas serve (gRPC health SERVING over mutual TLS, or a gateway's /healthz
over verified TLS), and checking that the data stores can be reached at all."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiohttp
import psycopg2
import redis.asyncio as aioredis
import redis.exceptions

from devstack.processes import Child
from devstack.report import redact
from scout_kit.healthcheck import check as grpc_health_check
from scout_kit.tls import TlsMaterial

POLL_SECONDS = 0.2


class NotReady(Exception):
    """A replica did not become ready in time."""


class Unreachable(Exception):
    """DATABASE_URL or REDIS_URL names a server that does not answer (one line, no trace)."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


async def require_reachable(database_url: str, redis_url: str) -> None:
    """Connect once to each, so a wrong URL is one clear line naming the setting."""

    def connect() -> None:
        psycopg2.connect(database_url, connect_timeout=5).close()

    try:
        await asyncio.to_thread(connect)
    except psycopg2.Error as exc:
        raise Unreachable(
            f"cannot reach PostgreSQL at {redact(database_url)} (DATABASE_URL): {_first_line(exc)}"
        ) from None
    client = aioredis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5)
    try:
        await client.ping()
    except (redis.exceptions.RedisError, OSError) as exc:
        raise Unreachable(
            f"cannot reach Redis at {redact(redis_url)} (REDIS_URL): {_first_line(exc)}"
        ) from None
    finally:
        await client.aclose()


async def wait_grpc_serving(child: Child, address: str, tls: TlsMaterial, within: float) -> None:
    """Until the standard health service at `address` reports SERVING (asked over mutual TLS,
    as the gateways will); fails fast if the child exits (ChildExited) and after `within`
    seconds (NotReady)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        child.ensure_running()
        if await asyncio.to_thread(grpc_health_check, address, "", 1.0, tls):
            return
        child.ensure_running()
        if loop.time() > deadline:
            raise NotReady(f"{child.name} did not report SERVING on {address} in {within:.0f}s")
        await asyncio.sleep(POLL_SECONDS)


def client_ssl_context(ca_file: Path) -> ssl.SSLContext:
    """Verify the gateway as any client should: against the development CA, hostname included."""
    return ssl.create_default_context(cafile=str(ca_file))


async def wait_https_healthy(child: Child, url: str, ca_file: Path, within: float) -> None:
    """Until GET {url}/healthz answers 200 over TLS verified against `ca_file`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    context = client_ssl_context(ca_file)
    last_error = "no answer"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0)) as session:
        while True:
            child.ensure_running()
            try:
                async with session.get(f"{url}/healthz", ssl=context) as response:
                    if response.status == 200:
                        return
                    last_error = f"HTTP {response.status}"
            except aiohttp.ClientConnectorCertificateError as exc:
                raise NotReady(
                    f"{child.name}: TLS verification against {ca_file} failed: {exc}"
                ) from None
            except (aiohttp.ClientError, TimeoutError) as exc:
                last_error = str(exc) or type(exc).__name__
            if loop.time() > deadline:
                raise NotReady(f"{child.name} did not answer {url}/healthz ({last_error})")
            await asyncio.sleep(POLL_SECONDS)
