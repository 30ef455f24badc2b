"""Talking to the gateway: HTTPS with certificate verification, gzip, one kept-alive connection.

A small HTTP/1.1 client on `ssl` rather than http.client or urllib: those load the `email`
package and more (about 2 MB of the agent's 20 MB budget) for features the agent never uses. It
speaks exactly what it needs: one request at a time on a persistent TLS connection, responses
with Content-Length or chunked bodies, bounded sizes. Every answer becomes a `Result` the agent
decides on; transport failures are results too (status 0).
"""

from __future__ import annotations

import json
import os
import re
import socket
import ssl
import zlib

from scout_agent import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

TIMEOUT = 20.0
USER_AGENT = f"scout-agent/{__version__}"
MAX_RETRY_AFTER = 3600.0
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 1024 * 1024
HASHED = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
HTTPS_URL = re.compile(r"^https://(\[[0-9A-Fa-f:.]+\]|[^/:?#@\s\[\]]+)(?::(\d{1,5}))?(/[^?#\s]*)?$")

# What the agent does with an answer.
OK = "ok"
RETRY = "retry"  # unreachable, 5xx, 429, 408: keep the samples, back off, send again
KEY_REJECTED = "key-rejected"  # 401: keep the samples, wait for a new key
INVALID = "invalid"  # another 4xx: these samples can never be accepted as they are


class Result:
    __slots__ = ("body", "detail", "outcome", "problem_type", "retry_after", "status")

    def __init__(
        self,
        outcome: str,
        status: int = 0,
        problem_type: str = "",
        detail: str = "",
        retry_after: float | None = None,
        body: Any = None,
    ) -> None:
        self.outcome = outcome
        self.status = status  # 0: no HTTP answer
        self.problem_type = problem_type  # the problem type URI's last part: "api-key-rotated"
        self.detail = detail
        self.retry_after = retry_after
        self.body = body

    def describe(self) -> str:
        if not self.status:
            return self.detail
        text = f"HTTP {self.status}"
        if self.problem_type:
            text += f" ({self.problem_type})"
        if self.detail:
            text += f": {self.detail}"
        return text


class ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as expected."""


def split_https_url(url: str) -> tuple[str, int, str] | None:
    """(host, port, path prefix) of an https:// URL without query or fragment, else None."""
    match = HTTPS_URL.match(url)
    if match is None:
        return None
    port = int(match.group(2) or 443)
    if not 0 < port < 65536:
        return None
    return match.group(1).strip("[]"), port, (match.group(3) or "").rstrip("/")


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates verified against the system's CAs, or only `ca_file` when it is given.

    The system's CAs are read from OpenSSL's hashed directory when there is one: OpenSSL then
    loads only the CA a server's chain needs, instead of the whole bundle (about 1 MB)."""
    if ca_file is None:
        paths = ssl.get_default_verify_paths()
        if not os.environ.get(paths.openssl_cafile_env) and _hashed_directory(paths.capath):
            context = ssl.create_default_context(capath=paths.capath)
        else:
            context = ssl.create_default_context()
    else:
        context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def _hashed_directory(path: str | None) -> bool:
    """Whether `path` holds CA certificates under OpenSSL's hash names (c_rehash)."""
    try:
        return path is not None and any(HASHED.match(name) for name in os.listdir(path))
    except OSError:
        return False


def gzip_bytes(data: bytes) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None  # an HTTP date: rare enough that the agent's own backoff is used
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def classify(status: int, headers: dict[str, str], body: bytes) -> Result:
    parsed: Any = None
    if body:
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    problem_type = detail = ""
    if isinstance(parsed, dict) and status >= 400:
        problem_type = str(parsed.get("type", "")).rsplit("/", 1)[-1]
        detail = str(parsed.get("detail") or parsed.get("title") or "")[:300]
    retry_after = _retry_after(headers.get("retry-after"))
    if 200 <= status < 300:
        outcome = OK
    elif status == 401:
        outcome = KEY_REJECTED
    elif status in (408, 429) or status >= 500:
        outcome = RETRY
    else:
        outcome = INVALID
    return Result(outcome, status, problem_type, detail, retry_after, parsed)


class _Connection:
    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.reader = sock.makefile("rb")

    def close(self) -> None:
        self.reader.close()
        self.sock.close()

    def _line(self) -> bytes:
        line = self.reader.readline(MAX_HEADER_BYTES + 1)
        if not line:
            raise ProtocolError("the server closed the connection")
        if len(line) > MAX_HEADER_BYTES:
            raise ProtocolError("header line too long")
        return line

    def exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        self.sock.sendall(request)
        status_line = self._line().decode("latin-1").split(None, 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
            raise ProtocolError("not an HTTP/1.x answer")
        status = int(status_line[1])
        headers: dict[str, str] = {}
        size = 0
        while True:
            line = self._line()
            size += len(line)
            if size > MAX_HEADER_BYTES:
                raise ProtocolError("headers too long")
            if line in (b"\r\n", b"\n"):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if status in (204, 304) or 100 <= status < 200:
            return status, headers, b""
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return status, headers, self._chunked()
        if "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY_BYTES:
                raise ProtocolError("body too large")
            body = self.reader.read(length)
            if len(body) != length:
                raise ProtocolError("the body was cut short")
            return status, headers, body
        headers["connection"] = "close"  # the body ends when the connection does
        return status, headers, self.reader.read(MAX_BODY_BYTES)

    def _chunked(self) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self._line().split(b";", 1)[0].strip(), 16)
            if size == 0:
                while self._line() not in (b"\r\n", b"\n"):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > MAX_BODY_BYTES:
                raise ProtocolError("body too large")
            chunk = self.reader.read(size)
            if len(chunk) != size:
                raise ProtocolError("the body was cut short")
            parts.append(chunk)
            self._line()


class Gateway:
    """One HTTPS connection to the gateway, reopened after any failure."""

    def __init__(self, url: str, ca_file: str | None, timeout: float = TIMEOUT) -> None:
        parts = split_https_url(url)
        if parts is None:
            raise ValueError("the gateway URL must be https://host[:port][/path]")
        self.host, self.port, self.prefix = parts
        self.timeout = timeout
        self.context = tls_context(ca_file)
        self._connection: _Connection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _connect(self) -> _Connection:
        if self._connection is None:
            raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
            try:
                sock = self.context.wrap_socket(raw, server_hostname=self.host)
            except BaseException:
                raw.close()
                raise
            self._connection = _Connection(sock)
        return self._connection

    def request(self, method: str, path: str, api_key: str, body: bytes | None = None) -> Result:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port != 443:
            host += f":{self.port}"
        head = [
            f"{method} {self.prefix}{path} HTTP/1.1",
            f"Host: {host}",
            f"User-Agent: {USER_AGENT}",
            "Accept: application/json",
            f"X-API-Key: {api_key}",
        ]
        if body is not None:
            body = gzip_bytes(body)
            head += [
                "Content-Type: application/json",
                "Content-Encoding: gzip",
                f"Content-Length: {len(body)}",
            ]
        request = ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + (body or b"")
        # A kept-alive connection the server closed meanwhile fails at once; one fresh attempt
        # follows. Resending is safe: posting the same samples twice stores them once.
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                status, headers, data = self._connect().exchange(request)
            except ssl.SSLCertVerificationError as exc:
                self.close()
                return Result(RETRY, detail=f"TLS certificate not trusted: {exc.verify_message}")
            except (OSError, ProtocolError, ValueError) as exc:
                self.close()
                if reused and attempt == 1 and not isinstance(exc, socket.timeout):
                    continue
                return Result(RETRY, detail=f"cannot reach {self.host}:{self.port}: {_why(exc)}")
            if headers.get("connection", "").lower() == "close":
                self.close()
            return classify(status, headers, data)
        raise AssertionError("unreachable")

    def post_samples(self, api_key: str, samples: list[dict[str, Any]]) -> Result:
        body = json.dumps({"samples": samples}, separators=(",", ":")).encode()
        return self.request("POST", "/api/v1/metrics", api_key, body)

    def whoami(self, api_key: str) -> Result:
        return self.request("GET", "/api/v1/whoami", api_key)


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
