"""Every input path is total: bytes that are not text, nesting, numbers and ranges no field can
hold get a 4xx problem naming what was wrong, never a 500 or an ERROR line."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from gateway.authn import SESSION_COOKIE
from scout_admin.commands import Admin
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.raw_http import RawAnswer, exchange
from tests.stack import Environment, Stack, client_session, running_stack


@dataclass
class Signed:
    stack: Stack
    port: int
    api_key: str
    server_id: str
    cookie: str
    csrf: str


@pytest.fixture
async def signed(env: Environment, admin: Admin) -> AsyncIterator[Signed]:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    created = await admin.create_server(email, "hostile")
    async with running_stack(env) as stack, client_session(env) as http:
        async with http.post(
            f"{stack.gateway.url}/api/v1/auth/login",
            json={"email": email, "password": STRONG_PASSWORD},
        ) as response:
            assert response.status == 200
            cookie = response.cookies[SESSION_COOKIE].value
            csrf = (await response.json())["csrf_token"]
        port = int(stack.gateway.url.rsplit(":", 1)[1])
        yield Signed(stack, port, created.api_key, created.server.id, cookie, csrf)


async def _send(
    env: Environment,
    signed: Signed,
    method: str,
    target: bytes,
    *,
    as_: str = "session",
    headers: bytes = b"",
    body: bytes | None = None,
) -> RawAnswer:
    auth = (
        f"Cookie: {SESSION_COOKIE}={signed.cookie}\r\nX-CSRF-Token: {signed.csrf}\r\n"
        if as_ == "session"
        else f"X-API-Key: {signed.api_key}\r\n"
    ).encode()
    framing = b""
    if body is not None:
        framing = b"Content-Type: application/json\r\nContent-Length: %d\r\n" % len(body)
    request = (
        method.encode()
        + b" "
        + target
        + b" HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
        + auth
        + headers
        + framing
        + b"\r\n"
        + (body or b"")
    )
    return await exchange(signed.port, env.client_ssl(), request)


def _assert_problem(answer: RawAnswer, status: int, type_: str, *words: str) -> None:
    assert answer.status == status, answer
    problem = answer.problem()
    assert problem["type"] == f"/problems/{type_}", problem
    for word in words:
        assert word in problem["detail"], problem


BODIES = {
    "deep nesting": (b'{"name": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", "nested"),
    "lone surrogate": (b'{"name": "web-\\ud800"}', "lone surrogate"),
    "NUL": (b'{"name": "web\\u0000"}', "U+0000"),
    "key with a lone surrogate": (b'{"\\udfff": 1, "name": "x"}', "not UTF-8"),
    "NaN": (b'{"name": "x", "n": NaN}', "NaN"),
    "infinite number": (b'{"name": "x", "n": 1e400}', "double"),
    "huge integer": (b'{"name": "x", "n": ' + b"9" * 5000 + b"}", "JSON"),
    "invalid UTF-8": (b'{"name": "\xff\xfe"}', "JSON"),
}


@pytest.mark.parametrize("case", sorted(BODIES))
async def test_bodies_no_handler_can_take_are_400(
    env: Environment, signed: Signed, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    body, word = BODIES[case]
    for method, target in (
        ("POST", b"/api/v1/servers"),
        ("PATCH", f"/api/v1/servers/{signed.server_id}".encode()),
        ("POST", b"/api/v1/auth/password"),
    ):
        answer = await _send(env, signed, method, target, body=body)
        _assert_problem(answer, 400, "invalid-json", word)
    # The metrics endpoint lets non-finite numbers through to its own 422, which names the
    # sample; everything else is the same 400.
    answer = await _send(env, signed, "POST", b"/api/v1/metrics", as_="key", body=body)
    assert answer.status in (400, 422), answer
    assert answer.problem()["type"] in ("/problems/invalid-json", "/problems/invalid-metrics")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


TEXT = {
    "raw bytes in a header": (b"/api/v1/whoami", b"X-Note: caf\xc3\r\n", "X-Note header"),
    "raw bytes in the cookie": (
        b"/api/v1/whoami",
        b"Cookie: theme=\xff\xfe\r\n",
        "Cookie header",
    ),
    "NUL in the path": (b"/api/v1/servers/ab%00cd", b"", "path"),
    "control character in the path": (b"/api/v1/servers/ab%0Acd/metrics", b"", "path"),
    "NUL in a query value": (b"/api/v1/servers?page_token=%00", b"", "page_token"),
    "bytes in a query name": (b"/api/v1/servers?%ff%00=1", b"", "query"),
}


@pytest.mark.parametrize("case", sorted(TEXT))
async def test_text_that_is_not_text_is_400_naming_the_part(
    env: Environment, signed: Signed, case: str
) -> None:
    target, headers, word = TEXT[case]
    answer = await _send(env, signed, "GET", target, headers=headers)
    _assert_problem(answer, 400, "invalid-encoding", word)


QUERIES = {
    "step beyond any range": (b"/metrics?names=cpu&step=999999999d", "step"),
    "from before year 1": (b"/metrics?names=cpu&from=-99999999999999", "from"),
    "to after year 9999": (b"/metrics?names=cpu&to=99999999999999", "to"),
    "RFC 3339 out of range": (b"/metrics?names=cpu&from=0000-01-01T00:00:00Z", "from"),
    "to just before year 1": (b"/metrics?names=cpu&to=-62135596801", "to"),
    "from just before year 1": (b"/metrics?names=cpu&from=-62135596801&to=0", "from"),
    "to at year 10000": (b"/metrics?names=cpu&to=253402300800", "to"),
    "activity page token": (b"/activity?page_token=%ff%ff", "page_token"),
    "activity limit": (b"/activity?limit=99999999999999999999", "limit"),
}


@pytest.mark.parametrize("case", sorted(QUERIES))
async def test_query_values_no_field_can_hold_are_422(
    env: Environment, signed: Signed, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    suffix, parameter = QUERIES[case]
    target = f"/api/v1/servers/{signed.server_id}".encode() + suffix
    answer = await _send(env, signed, "GET", target)
    assert answer.status == 422, answer
    problem = answer.problem()
    assert parameter in json.dumps(problem), problem
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_session_listing_page_tokens_and_limits_are_422(
    env: Environment, signed: Signed
) -> None:
    for target in (
        b"/api/v1/auth/activity?page_token=%ff",
        b"/api/v1/auth/activity?limit=-1",
        b"/api/v1/servers?page_token=zz&limit=1",
        b"/api/v1/servers?limit=1e3",
    ):
        answer = await _send(env, signed, "GET", target)
        assert answer.status == 422, (target, answer)
        answer.problem()
