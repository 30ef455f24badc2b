"""A raw HTTP/1.1 exchange over TLS: for requests no client library would send."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == "application/problem+json", self
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


def parse_answer(answer: bytes) -> RawAnswer:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = _unchunk(body)
    return RawAnswer(int(status_line.split()[1]), headers, body)


def _unchunk(body: bytes) -> bytes:
    out = b""
    while body:
        size_line, _, rest = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += rest[:size]
        body = rest[size + 2 :]
    return out


async def exchange(port: int, context: ssl.SSLContext, request: bytes) -> RawAnswer:
    """Send `request` as it is (it should ask for Connection: close) and read the answer."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    writer.write(request)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return parse_answer(answer)


def exchange_sync(port: int, context: ssl.SSLContext, request: bytes) -> RawAnswer:
    """`exchange` for a synchronous test (the gateway runs on another thread's loop)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(request)
        chunks = []
        while chunk := tls.recv(65536):
            chunks.append(chunk)
    return parse_answer(b"".join(chunks))
