"""Requests aiohttp's parser refuses get the gateway's problem+json, echo nothing, log nothing
secret; and no answer names the software's versions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from devstack.ports import free_ports
from gateway.app import create_plain_http_app
from gateway.runner import SERVER_HEADER
from gateway.settings import Settings
from tests.gateway.raw_http import RawAnswer, exchange, parse_answer
from tests.stack import Environment, Gateway, client_session, start_gateway

ROOT = Path(__file__).resolve().parents[2]
NOWHERE = {
    "KEY_SERVICE_ADDR": "127.0.0.1:1",
    "AUTH_SERVICE_ADDR": "127.0.0.1:1",
    "INGEST_SERVICE_ADDR": "127.0.0.1:1",
}
SECURITY_HEADERS = (
    "Strict-Transport-Security",
    "X-Content-Type-Options",
    "X-Frame-Options",
    "Referrer-Policy",
    "Content-Security-Policy",
)


@pytest.fixture
async def gateway(env: Environment) -> AsyncIterator[Gateway]:
    # The backends point nowhere: none of these requests may get as far as asking them.
    started = await start_gateway(env, NOWHERE)
    yield started
    await started.runner.cleanup()


def _requests(key: str, token: str) -> dict[str, bytes]:
    auth = f"X-API-Key: {key}\r\nCookie: __Host-scout_session={token}\r\n".encode()
    return {
        "bad request line": b"GET /api/v1/whoami HTTP/1.1 " + key.encode() + b"\r\n" + auth,
        "control byte in a header": (
            b"GET /api/v1/whoami HTTP/1.1\r\nHost: localhost\r\n"
            + auth
            + b"X-Bad: a\x01"
            + key.encode()
            + b"\r\n"
        ),
        "header over the size limit": (
            b"GET /api/v1/whoami HTTP/1.1\r\nHost: localhost\r\n"
            + auth
            + b"X-Big: "
            + key.encode() * 200
            + b"\r\n"
        ),
        "request line over the size limit": (
            b"GET /" + key.encode() * 200 + b" HTTP/1.1\r\nHost: localhost\r\n" + auth
        ),
        "bad method": b"G\x00T / HTTP/1.1\r\n" + auth,
        "conflicting framing": (
            b"POST /api/v1/metrics HTTP/1.1\r\nHost: localhost\r\n"
            + auth
            + b"Content-Length: 3\r\nContent-Length: 4\r\n"
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "bad request line",
        "control byte in a header",
        "header over the size limit",
        "request line over the size limit",
        "bad method",
        "conflicting framing",
    ],
)
async def test_malformed_request_gets_a_problem_and_leaks_nothing(
    env: Environment, gateway: Gateway, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    key, token = secrets.token_hex(32), secrets.token_urlsafe(32)
    caplog.set_level(logging.DEBUG)
    port = int(gateway.url.rsplit(":", 1)[1])
    answer = await exchange(port, env.client_ssl(), _requests(key, token)[case] + b"\r\n")
    assert answer.status == 400
    assert answer.headers["server"] == SERVER_HEADER
    for name in SECURITY_HEADERS:
        assert name.lower() in answer.headers, name
    problem = answer.problem()
    assert problem["type"] == "/problems/malformed-request"
    assert problem["status"] == 400
    text = repr(answer)
    assert key not in text and token not in text
    assert key not in caplog.text and token not in caplog.text
    assert all(record.levelno < logging.ERROR for record in caplog.records)
    assert any("malformed HTTP request" in record.getMessage() for record in caplog.records)


async def test_no_answer_names_versions(env: Environment, gateway: Gateway) -> None:
    async with client_session(env) as http:
        for path in ("/healthz", "/api/v1/whoami", "/no/such/page"):
            async with http.get(gateway.url + path) as response:
                assert response.headers["Server"] == SERVER_HEADER, path
    settings = Settings.from_env(env.gateway_env(NOWHERE))
    async with TestClient(TestServer(create_plain_http_app(settings))) as client:
        response = await client.get("/api/v1/whoami")
        assert response.status == 403
        assert response.headers["Server"] == SERVER_HEADER


async def _plain_exchange(port: int, request: bytes) -> RawAnswer:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return parse_answer(answer)


async def test_a_gateway_process_answers_and_logs_malformed_requests_safely(
    env: Environment,
) -> None:
    """As deployed: `python -m gateway`, its own logging (JSON, at debug), HTTPS and plain HTTP.
    Its whole stderr is read after it stops: no key, no token, no ERROR line."""
    https_port, http_port = free_ports(2)
    key, token = secrets.token_hex(32), secrets.token_urlsafe(32)
    settings = env.gateway_env(
        NOWHERE,
        LISTEN_HOST="127.0.0.1",
        HTTPS_PORT=str(https_port),
        HTTP_PORT=str(http_port),
        LOG_FORMAT="json",
        LOG_LEVEL="debug",
        ACCESS_LOG="all",
        SHUTDOWN_DRAIN_SECONDS="0",
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway", env={**os.environ, **settings}, cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        async with client_session(env) as http, asyncio.timeout(30):
            # Polling another process over HTTPS: there is no event to wait on.
            while True:
                try:
                    async with http.get(f"https://localhost:{https_port}/healthz") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.1)
        answers = []
        for request in _requests(key, token).values():
            answers.append(await exchange(https_port, env.client_ssl(), request + b"\r\n"))
            answers.append(await _plain_exchange(http_port, request + b"\r\n"))
        answers.append(
            await _plain_exchange(
                http_port,
                b"GET /api/v1/whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                + f"X-API-Key: {key}\r\n\r\n".encode(),
            )
        )
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    for answer in answers[:-1]:
        assert answer.status == 400, answer
        assert answer.problem()["type"] == "/problems/malformed-request"
    assert answers[-1].status == 403  # plain HTTP, well-formed: refused, not read
    assert all(answer.headers["server"] == SERVER_HEADER for answer in answers)
    log = stderr.decode()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert any("malformed HTTP request" in line["msg"] for line in lines), log[-2000:]
    assert key not in log and token not in log
    assert not [line for line in lines if line["level"] in ("error", "critical")], log[-2000:]
