"""Talking to the gateway: HTTPS with certificate verification, gzip, one kept-alive connection.

http.client rather than urllib.request: fewer modules loaded (the agent's memory goal), and one
persistent TLS connection, so a post every 10 s costs no handshake. Every answer becomes a
`Result` the agent decides on; transport failures are results too (`unreachable`).
"""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import zlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from scout_agent import __version__

TIMEOUT = 20.0
USER_AGENT = f"scout-agent/{__version__}"
MAX_RETRY_AFTER = 3600.0

# What the agent does with an answer.
OK = "ok"
RETRY = "retry"  # unreachable, 5xx, 429, 408: keep the samples, back off, send again
KEY_REJECTED = "key-rejected"  # 401: keep the samples, wait for a new key
INVALID = "invalid"  # another 4xx: these samples can never be accepted as they are


@dataclass(frozen=True)
class Result:
    outcome: str
    status: int = 0  # 0: no HTTP answer
    problem_type: str = ""  # the last part of the problem type URI, e.g. "api-key-rotated"
    detail: str = ""
    retry_after: float | None = None
    body: Any = None

    def describe(self) -> str:
        if not self.status:
            return self.detail
        text = f"HTTP {self.status}"
        if self.problem_type:
            text += f" ({self.problem_type})"
        if self.detail:
            text += f": {self.detail}"
        return text


def tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Certificates verified against the system's CAs, or only `ca_file` when it is given."""
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


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


def classify(status: int, headers: http.client.HTTPMessage, body: bytes) -> Result:
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
    retry_after = _retry_after(headers.get("Retry-After"))
    if 200 <= status < 300:
        outcome = OK
    elif status == 401:
        outcome = KEY_REJECTED
    elif status in (408, 429) or status >= 500:
        outcome = RETRY
    else:
        outcome = INVALID
    return Result(outcome, status, problem_type, detail, retry_after, parsed)


class Gateway:
    """One HTTPS connection to the gateway, reopened after any failure."""

    def __init__(self, url: str, ca_file: str | None, timeout: float = TIMEOUT) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the gateway URL must be https://")
        self.host = parts.hostname
        self.port = parts.port or 443
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.context = tls_context(ca_file)
        self._connection: http.client.HTTPSConnection | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def request(self, method: str, path: str, api_key: str, body: bytes | None = None) -> Result:
        headers = {"X-API-Key": api_key, "User-Agent": USER_AGENT, "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
            headers["Content-Encoding"] = "gzip"
            body = gzip_bytes(body)
        # A kept-alive connection the server closed meanwhile fails at once; one fresh attempt
        # follows. Resending is safe: posting the same samples twice stores them once.
        for attempt in (1, 2):
            reused = self._connection is not None
            try:
                connection = self._connect()
                connection.request(method, self.prefix + path, body=body, headers=headers)
                response = connection.getresponse()
                data = response.read()
                if response.will_close:
                    self.close()
                return classify(response.status, response.headers, data)
            except ssl.SSLCertVerificationError as exc:
                self.close()
                return Result(RETRY, detail=f"TLS certificate not trusted: {exc.verify_message}")
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if reused and attempt == 1 and not isinstance(exc, socket.timeout):
                    continue
                return Result(RETRY, detail=f"cannot reach {self.host}:{self.port}: {_why(exc)}")
        raise AssertionError("unreachable")

    def _connect(self) -> http.client.HTTPSConnection:
        if self._connection is None:
            self._connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=self.timeout, context=self.context
            )
        return self._connection

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
