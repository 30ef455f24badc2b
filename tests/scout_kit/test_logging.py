"""Every service's log lines mask credentials wherever they appear; aiohttp's loggers never log a
refused request's raw bytes; the suite's own log check catches a leak."""

from __future__ import annotations

import io
import json
import logging
import secrets
import sys
from collections.abc import Iterator

import pytest
from aiohttp.http_exceptions import InvalidHeader

from scout_kit.logging import REDACTED, configure_logging, redact
from tests import log_secrets

# Made-up credentials of each shape (literals: the suite's own check flags only secrets that
# secrets.token_*() made, which these tests must not log).
API_KEY = "0123456789abcdef" * 4
SESSION_TOKEN = "Zm9vYmFyYmF6cXV4X3Rva2VuX3NoYXBlX2hlcmUtXy0"
JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJnYXRld2F5In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"validating {API_KEY}", API_KEY),
        (f"key={API_KEY.upper()}", API_KEY.upper()),
        (f"twice {API_KEY}{API_KEY}", API_KEY),
        (f"session {SESSION_TOKEN} expired", SESSION_TOKEN),
        (f"forwarding {JWT}", JWT),
        ("X-API-Key: not-even-hex", "not-even-hex"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("Cookie: __Host-scout_session=short-token; other=1", "short-token"),
        ('{"email": "a@example.com", "password": "hunter2"}', "hunter2"),
        ("new_password=letmein&x=1", "letmein"),
        ("csrf_token: 'abc123'", "abc123"),
    ],
)
def test_redact_masks_credentials(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert REDACTED in redacted


@pytest.mark.parametrize(
    "text",
    [
        "request_id=4f3c2b1a4f3c2b1a4f3c2b1a4f3c2b1a trace_id=0af7651916cd43dd8448eb211c80319c",
        "GET /api/v1/servers/8d6f0c5e-34a1-4c52-9a51-3f1a2b7c9d10/metrics 200",
        "committed 1200 samples in 3 batches",
        "password too weak",
    ],
)
def test_redact_leaves_ordinary_text(text: str) -> None:
    assert redact(text) == text


@pytest.fixture
def service_log() -> Iterator[io.StringIO]:
    """configure_logging as a service calls it, writing to a buffer; the root logger (and
    pytest's handlers on it) restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    aiohttp_server = logging.getLogger("aiohttp.server")
    saved_filters = aiohttp_server.filters[:]
    stream = io.StringIO()
    real_stderr = sys.stderr
    sys.stderr = stream
    try:
        configure_logging("test", "debug", "json")
    finally:
        sys.stderr = real_stderr
    try:
        yield stream
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        aiohttp_server.filters[:] = saved_filters


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_service_logs_mask_message_arguments_tracebacks_and_fields(
    service_log: io.StringIO,
) -> None:
    log = logging.getLogger("scout_kit.test")
    log.warning("unknown key %s", API_KEY, extra={"header": f"X-API-Key: {API_KEY}"})
    try:
        raise ValueError(f"bad session {SESSION_TOKEN}")
    except ValueError:
        log.exception("failed")
    text = service_log.getvalue()
    assert API_KEY not in text and SESSION_TOKEN not in text
    first, second = _lines(service_log)
    assert first["msg"] == f"unknown key {REDACTED}"
    assert first["header"] == f"X-API-Key: {REDACTED}"
    assert "ValueError: bad session [redacted]" in str(second["exc"])


def test_aiohttp_never_logs_a_refused_requests_bytes(service_log: io.StringIO) -> None:
    raw = f"X-API-Key: {API_KEY}\x01".encode()
    try:
        raise InvalidHeader(raw)
    except InvalidHeader:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "1.2.3.4")
    (line,) = _lines(service_log)
    assert line["msg"] == "malformed HTTP request refused: InvalidHeader"
    assert "exc" not in line
    assert "X-API-Key" not in service_log.getvalue()


def test_the_suites_log_check_sees_made_secrets() -> None:
    made = secrets.token_hex(32)
    assert made in log_secrets._created
    assert secrets.token_hex(16) not in log_secrets._created  # request ids are not secrets
    found = log_secrets.leaks([("gateway", f"looked up {made}")], {made})
    assert found and made not in found[0]  # the report itself shows only a tail
    assert not log_secrets.leaks([("gateway", "looked up nothing")], {made})
