"""Property-based: arbitrary bytes, Unicode and extreme numbers in the headers, cookies, query
values, path segments and bodies of every documented route of a real gateway (with no
credentials, an API key or a session) never get a 5xx or an ERROR log line; every 4xx is
problem+json; no answer names a version."""

from __future__ import annotations

import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_from_bytes

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.openapi import build_document
from gateway.runner import SERVER_HEADER
from tests.gateway.metrics_support import SESSION_COOKIE, sign_in
from tests.gateway.raw_http import RawAnswer, exchange_sync
from tests.live_stack import error_records, new_account, on_background_loop
from tests.stack import Environment, client_session, running_stack

EXAMPLES = 600
# Operations that would end the credentials the fuzzing uses: fuzzed without them.
CREDENTIAL_ENDING = {("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/servers/{server_id}")}
CREDENTIAL_ENDING_PREFIX = ("/api/v1/servers/{server_id}/api-key",)


@dataclass
class _Live:
    port: int
    api_key: str
    server_id: str
    cookie: str
    csrf: str
    errors: list[logging.LogRecord]


@pytest.fixture
def live(env: Environment) -> Iterator[_Live]:
    """A real stack on a background thread's loop, so that hypothesis drives it synchronously
    with raw sockets; every ERROR record of any logger is collected."""

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[_Live]:
        account = await new_account(env)
        async with (
            running_stack(env) as stack,
            client_session(env, cookie_jar=aiohttp.DummyCookieJar()) as http,
        ):
            headers = await sign_in(http, stack.gateway.url, account.email)
            yield _Live(
                int(stack.gateway.url.rsplit(":", 1)[1]),
                account.created.api_key,
                account.created.server.id,
                headers["Cookie"].split("=", 1)[1],
                headers["X-CSRF-Token"],
                errors,
            )

    with error_records() as errors, on_background_loop(serve) as live:
        yield live


def _operations() -> list[tuple[str, str, dict[str, Any]]]:
    document = build_document("https://localhost")
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


OPERATIONS = _operations()
QUERY_NAMES = sorted(
    {
        parameter["name"]
        for _, _, operation in OPERATIONS
        for parameter in operation.get("parameters", [])
        if parameter.get("in") == "query"
    }
    | {"limit", "page_token", "type"}
)
HEADER_NAMES = [
    "X-API-Key",
    "Cookie",
    "X-CSRF-Token",
    "X-Request-ID",
    "X-Forwarded-For",
    "Content-Type",
    "Content-Encoding",
    "Accept",
    "Accept-Encoding",
    "Origin",
    "Sec-Fetch-Site",
    "If-None-Match",
    "Range",
    "User-Agent",
]

# Text in URLs: raw bytes percent-encoded (invalid UTF-8, NUL, controls), any Unicode, numbers
# far outside every field, and instants at and past the ends of the calendar.
_numbers = st.one_of(
    st.integers(min_value=-(10**40), max_value=10**40).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e309", "-0", "0x10", "1_000", "٣", "99999999999d", "1e3", "NaN"]),
)
_instants = st.sampled_from(
    [
        "0001-01-01T00:00:00Z",
        "0000-12-31T23:59:59Z",
        "9999-12-31T23:59:59.999999999Z",
        "2026-02-30T00:00:00Z",
        "2026-01-01T24:00:00+25:00",
        "-62135596801",
        "253402300800",
    ]
)
# Mostly text a client might send (so that requests reach the handlers), sometimes bytes.
_url_text = st.one_of(
    _numbers,
    _instants,
    st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=24),
    st.sampled_from(["cpu", "cpu,mem", "key.created", "5m", "1", "200", "0", ""]),
    st.binary(max_size=24).map(lambda b: quote_from_bytes(b, safe="")),
    st.text(max_size=24).map(lambda t: quote(t, safe="", errors="surrogatepass")),
)
_header_value = st.one_of(
    st.binary(max_size=80).map(lambda b: re.sub(rb"[\r\n]", b"", b)),
    st.text(max_size=80).map(lambda t: re.sub(r"[\r\n]", "", t).encode("utf-8", "surrogatepass")),
    st.sampled_from([b"a" * 64, b"g" * 64, b"__Host-scout_session=" + b"x" * 43, b"gzip"]),
)
_header_name = st.one_of(
    st.sampled_from(HEADER_NAMES).map(str.encode),
    st.from_regex(rb"\A[A-Za-z0-9-]{1,20}\Z"),
)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
_json = st.recursive(
    _json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
_field_names = st.sampled_from(
    ["name", "email", "password", "current_password", "new_password", "grace_seconds",
     "paused", "samples", "ts", "metrics", "display_name"]
)  # fmt: skip
_body = st.one_of(
    st.none(),
    st.binary(max_size=200),
    st.dictionaries(_field_names, _json, max_size=4).map(lambda v: json.dumps(v).encode()),
    st.dictionaries(_field_names, _json, max_size=4).map(lambda v: json.dumps(v).encode()),
    _json.map(lambda v: json.dumps(v).encode()),
    st.sampled_from(
        [
            b'{"name": "\\ud800"}',
            b'{"name": "a\\u0000b"}',
            b'{"samples": [{"ts": 1e999, "metrics": {"cpu": 1}}]}',
            b'{"samples": [{"ts": "9999-12-31T23:59:59Z", "metrics": {"a": 1e308}}]}',
            b"[" * 5000,
            b'{"a":' * 2000,
        ]
    ),
)


@st.composite
def _requests(draw: st.DrawFn, live: _Live) -> tuple[str, bytes]:
    method, template, _ = draw(st.sampled_from(OPERATIONS))
    ending = (method, template) in CREDENTIAL_ENDING or template.startswith(
        CREDENTIAL_ENDING_PREFIX
    )
    credentials = draw(
        st.sampled_from(["none", "key"] if ending else ["none", "key", "session", "session"])
    )

    def segment(name: str) -> str:
        real = {"server_id": live.server_id}.get(name)
        if real and not ending and draw(st.integers(0, 3)):
            return real
        return str(draw(_url_text))

    path = re.sub(r"\{([^}]+)\}", lambda m: segment(m.group(1)), template)
    query = draw(
        st.lists(
            st.tuples(st.one_of(st.sampled_from(QUERY_NAMES), _url_text), _url_text), max_size=4
        )
    )
    if query:
        path += "?" + "&".join(f"{quote(k, safe='%')}={quote(v, safe='%')}" for k, v in query)
    headers = (
        draw(st.lists(st.tuples(_header_name, _header_value), max_size=3))
        if draw(st.integers(0, 2)) == 0
        else []
    )
    lines = [b"%s: %s" % (name, value) for name, value in headers]
    if credentials == "key":
        lines.append(b"X-API-Key: " + live.api_key.encode())
    elif credentials == "session":
        lines.append(f"Cookie: {SESSION_COOKIE}={live.cookie}".encode())
        lines.append(b"X-CSRF-Token: " + live.csrf.encode())
    body = draw(_body)
    if body is not None:
        if draw(st.integers(0, 5)):
            lines.append(b"Content-Type: application/json")
        lines.append(b"Content-Length: %d" % len(body))
    request = (
        f"{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n".encode()
        + b"".join(line + b"\r\n" for line in lines)
        + b"\r\n"
        + (body or b"")
    )
    return f"{method} {template}", request


def _check(answer: RawAnswer, live: _Live) -> None:
    assert answer.status < 500, answer
    assert answer.headers.get("server") == SERVER_HEADER, answer
    if answer.status >= 400:
        problem = answer.problem()
        assert problem["status"] == answer.status
    assert not live.errors, [r.getMessage() for r in live.errors]


def test_any_bytes_anywhere_get_no_server_error(live: _Live, env: Environment) -> None:
    context = env.client_ssl()

    @given(st.data())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(data: st.DataObject) -> None:
        _, request = data.draw(_requests(live))
        _check(exchange_sync(live.port, context, request), live)

    fuzz()
