"""`python -m scout_kit.healthcheck TARGET`: the containers' healthcheck, on real servers."""

from __future__ import annotations

import asyncio
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from aiohttp import web
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

from devstack.certs import DevCertificates, ensure_dev_certificates
from devstack.ports import free_ports


@pytest.fixture
async def health_server() -> AsyncIterator[tuple[str, health_aio.HealthServicer]]:
    server = grpc.aio.server()
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}", health
    await server.stop(0)


async def probe(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "scout_kit.healthcheck",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode is not None
    return process.returncode, output.decode()


async def test_exit_0_when_serving(
    health_server: tuple[str, health_aio.HealthServicer],
) -> None:
    address, health = health_server
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    assert await probe(address) == (0, "")


async def test_exit_1_when_not_serving_or_unknown(
    health_server: tuple[str, health_aio.HealthServicer],
) -> None:
    address, health = health_server
    await health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    code, output = await probe(address)
    assert code == 1
    assert "not healthy" in output
    code, _ = await probe(address, "--service", "scout.unknown.v1.Nothing")
    assert code == 1


async def test_exit_1_when_nothing_listens() -> None:
    (port,) = free_ports(1)
    code, _ = await probe(f"127.0.0.1:{port}", "--timeout", "1")
    assert code == 1


@pytest.fixture
async def https_server(tmp_path: Path) -> AsyncIterator[tuple[int, DevCertificates]]:
    certs = ensure_dev_certificates(tmp_path)

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app)
    await runner.setup()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certs.server_cert, certs.server_key)
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    yield port, certs
    await runner.cleanup()


async def test_https_url_verified_against_a_ca(
    https_server: tuple[int, DevCertificates],
) -> None:
    port, certs = https_server
    url = f"https://localhost:{port}/healthz"
    assert await probe(url, "--cafile", str(certs.ca_cert)) == (0, "")
    code, _ = await probe(f"https://localhost:{port}/missing", "--cafile", str(certs.ca_cert))
    assert code == 1


async def test_https_without_a_ca_only_on_loopback(
    https_server: tuple[int, DevCertificates],
) -> None:
    port, _ = https_server
    assert await probe(f"https://127.0.0.1:{port}/healthz") == (0, "")
    code, output = await probe("https://gateway.example:8443/healthz")
    assert code == 2
    assert "needs --cafile" in output
