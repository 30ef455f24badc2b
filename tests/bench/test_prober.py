"""The bench's prober: one keep-alive HTTPS connection, statuses read off the bytes, reopened
when the server closes it (the latencies of scenario 4 rest on it)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from bench.load import Prober, _complete_response
from tests.stack import Environment


def test_a_response_is_complete_only_once_all_of_its_body_arrived() -> None:
    head = b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\n"
    assert _complete_response(bytearray(head[:20])) is None
    assert _complete_response(bytearray(head + b"abc")) is None
    assert _complete_response(bytearray(head + b"abcde" + b"HTTP/1.1")) == (401, len(head) + 5)
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
    assert _complete_response(bytearray(chunked)) is None
    assert _complete_response(bytearray(chunked + b"0\r\n\r\n")) == (200, len(chunked) + 5)


async def _ok(request: web.Request) -> web.Response:
    return web.Response(text=request.headers.get("X-Probe", "none"))


async def _closing(request: web.Request) -> web.Response:
    response = web.Response(status=401, text="gone")
    response.force_close()
    return response


async def _streamed(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(status=202)
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(b"part")
    await response.write_eof()
    return response


@pytest.fixture
async def https_port(env: Environment) -> AsyncIterator[int]:
    app = web.Application()
    app.router.add_get("/ok", _ok)
    app.router.add_get("/closing", _closing)
    app.router.add_get("/streamed", _streamed)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(env.cert_file, env.key_file)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock, ssl_context=context).start()
    try:
        yield sock.getsockname()[1]
    finally:
        await runner.cleanup()


async def test_the_prober_answers_each_status_on_one_connection_and_reopens_a_closed_one(
    env: Environment, https_port: int
) -> None:
    prober = Prober(https_port, env.client_ssl())
    try:
        before = time.perf_counter()
        status, answered = await prober.get("/ok", {"X-Probe": "1"})
        assert status == 200 and before < answered <= time.perf_counter()
        first = prober._protocol
        assert (await prober.get("/streamed", {}))[0] == 202
        assert (await prober.get("/ok", {}))[0] == 200
        assert prober._protocol is first  # kept alive
        assert (await prober.get("/closing", {}))[0] == 401
        assert (await prober.get("/missing", {}))[0] == 404
        assert prober._protocol is not first  # the server closed it: a new one
    finally:
        prober.close()
