"""Session sign-in through the gateway, as a browser or a custom tool sees it: a real HTTPS client
with a cookie jar, real gateways (two replicas where it matters), auth service, PostgreSQL, Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from auth_service.server import create_server as create_auth_server
from auth_service.settings import Settings as AuthSettings
from gateway.app import create_plain_http_app
from gateway.app_keys import BACKENDS, SESSION_CACHE, SESSION_USE
from gateway.settings import Settings as GatewaySettings
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.stack import (
    Environment,
    HeldCalls,
    client_session,
    eventually,
    leased,
    running_stack,
    start_gateway,
)

COOKIE = "__Host-scout_session"
ORIGIN = "https://localhost"  # the PUBLIC_URL the test gateways are given
IDLE = 1800
ABSOLUTE = 43_200


def jar_client(env: Environment) -> aiohttp.ClientSession:
    # unsafe=True: the jar keeps cookies of any host, as the gateway is reached as localhost.
    return client_session(env, cookie_jar=aiohttp.CookieJar(unsafe=True))


def bare_client(env: Environment) -> aiohttp.ClientSession:
    """A client that keeps no cookies: each request carries exactly the Cookie header given."""
    return client_session(env, cookie_jar=aiohttp.DummyCookieJar())


def fake_address() -> str:
    """A client address of its own (via X-Forwarded-For), so throttling counts are per test."""
    raw = uuid.uuid4().bytes
    return f"10.{raw[0]}.{raw[1]}.{raw[2] or 1}"


async def login(
    http: aiohttp.ClientSession, url: str, email: str, password: str, **headers: str
) -> aiohttp.ClientResponse:
    response = await http.post(
        f"{url}/api/v1/auth/login", json={"email": email, "password": password}, headers=headers
    )
    await response.read()
    return response


async def signed_in(
    http: aiohttp.ClientSession, url: str, email: str, **headers: str
) -> dict[str, Any]:
    response = await login(http, url, email, STRONG_PASSWORD, **headers)
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def csrf(body: dict[str, Any]) -> dict[str, str]:
    return {"X-CSRF-Token": body["csrf_token"], "Origin": ORIGIN}


async def status_of(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> int:
    async with http.request(method, url, **kwargs) as response:
        await response.read()
        return response.status


def cookie_attributes(set_cookie: str) -> tuple[str, str, dict[str, str]]:
    first, *rest = [part.strip() for part in set_cookie.split(";")]
    name, _, value = first.partition("=")
    attributes = {}
    for part in rest:
        key, _, val = part.partition("=")
        attributes[key.lower()] = val
    return name, value, attributes


async def test_login_use_logout_then_refused(env: Environment, admin: Admin) -> None:
    email = unique_email()
    user = await admin.create_user(email, STRONG_PASSWORD, None)
    async with (
        running_stack(env, gateways=2) as stack,
        jar_client(env) as http,
        bare_client(env) as raw,
    ):
        a, b = (g.url for g in stack.gateways)
        body = await signed_in(http, a, email)
        assert body["user"]["id"] == user.id
        assert body["user"]["email"] == email
        assert body["csrf_token"]
        assert body["expires_at"]
        assert body["idle_expires_at"]
        assert body["session"]["current"] is True

        async with http.get(f"{b}/api/v1/whoami") as response:
            assert response.status == 200
            assert await response.json() == {
                "kind": "user",
                "id": user.id,
                "account_id": user.account_id,
                "auth_method": "session",
            }
        async with http.get(f"{a}/api/v1/auth/session") as response:
            current = await response.json()
            assert current["user"]["email"] == email
            assert current["csrf_token"] == body["csrf_token"]
            assert current["session"]["id"] == body["session"]["id"]
        token = http.cookie_jar.filter_cookies(URL(a))[COOKIE].value

        async with http.post(f"{a}/api/v1/auth/logout", headers=csrf(body)) as response:
            assert response.status == 204
            _, value, attributes = cookie_attributes(response.headers["Set-Cookie"])
            assert value in ("", '""')
            assert attributes["max-age"] == "0"
            assert {"secure", "httponly", "path"} <= attributes.keys()
        assert COOKIE not in http.cookie_jar.filter_cookies(URL(a))
        assert await status_of(http, "GET", f"{a}/api/v1/whoami") == 401

        # The old token, replayed by hand, is refused on every replica.
        for gateway in stack.gateways:
            async with raw.get(
                f"{gateway.url}/api/v1/whoami", headers={"Cookie": f"{COOKIE}={token}"}
            ) as response:
                assert response.status == 401
                problem = await response.json()
                assert problem["type"].endswith("/session-invalid")


async def test_cookie_attributes(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with running_stack(env) as stack, jar_client(env) as http:
        response = await login(http, stack.gateway.url, email, STRONG_PASSWORD)
        assert response.status == 200
        cookies = response.headers.getall("Set-Cookie")
        assert len(cookies) == 1
        name, value, attributes = cookie_attributes(cookies[0])
        assert name == COOKIE
        assert len(value) >= 43  # 256 bits, URL-safe base64
        assert "secure" in attributes
        assert "httponly" in attributes
        assert attributes["samesite"] == "Strict"
        assert attributes["path"] == "/"
        assert "domain" not in attributes
        assert attributes["max-age"] == str(ABSOLUTE)
        assert response.headers["Cache-Control"] == "no-store"
        # The token is only in the cookie, never in the body.
        assert value not in await response.text()


async def test_idle_expiry_slides_with_use_and_is_enforced(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    clock = ManualClock()
    async with running_stack(env, clock=clock) as stack, jar_client(env) as http:
        url = stack.gateway.url
        await signed_in(http, url, email)
        for _ in range(3):  # used just before going idle: the idle deadline moves on
            clock.advance(IDLE - 10)
            assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200
        clock.advance(IDLE)
        async with http.get(f"{url}/api/v1/whoami") as response:
            assert response.status == 401
            problem = await response.json()
            assert "expired" in problem["detail"]
        # Gone for good, even if the clock were to go back.
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 401


async def test_uses_answered_from_the_cache_slide_the_idle_deadline(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    clock = ManualClock()
    async with running_stack(env, clock=clock) as stack, jar_client(env) as http:
        url = stack.gateway.url
        await signed_in(http, url, email)
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200  # validated, cached
        clock.advance(20)  # within the session cache's TTL (30 s)
        await eventually(leased(stack.gateway))  # the lease, on this clock, is renewed again
        hits = stack.gateway.app[SESSION_CACHE].stats.hits
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200
        assert stack.gateway.app[SESSION_CACHE].stats.hits == hits + 1  # no auth service call
        await stack.gateway.app[SESSION_USE].flush()  # what the gateway does every few seconds
        # Idle since the cached use, not since the validation 20 s before it.
        clock.advance(IDLE - 10)
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200
        clock.advance(IDLE)
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 401


async def test_absolute_expiry_ends_even_a_busy_session(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    clock = ManualClock()
    async with running_stack(env, clock=clock) as stack, jar_client(env) as http:
        url = stack.gateway.url
        body = await signed_in(http, url, email)
        expected = clock.now() + timedelta(seconds=ABSOLUTE)
        assert body["expires_at"] == expected.isoformat(timespec="milliseconds")[:-6] + "Z"
        elapsed = 0
        while elapsed + 1500 < ABSOLUTE:
            clock.advance(1500)
            elapsed += 1500
            assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200, elapsed
        async with http.get(f"{url}/api/v1/auth/session") as response:
            # The idle deadline never reaches past the absolute one.
            assert (await response.json())["idle_expires_at"] == body["expires_at"]
        clock.advance(ABSOLUTE - elapsed)
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 401


async def test_a_cookie_brought_to_login_is_never_adopted(env: Environment, admin: Admin) -> None:
    attacker, victim = unique_email(), unique_email()
    attacker_user = await admin.create_user(attacker, STRONG_PASSWORD, None)
    victim_user = await admin.create_user(victim, STRONG_PASSWORD, None)
    async with running_stack(env) as stack, bare_client(env) as raw:
        url = stack.gateway.url
        # An attacker's own valid session token, and a made-up one, planted in the victim's
        # browser before the victim signs in.
        mine = await login(raw, url, attacker, STRONG_PASSWORD)
        planted = mine.cookies[COOKIE].value
        for brought in (planted, "attacker-chosen-value-" + "x" * 21):
            response = await login(raw, url, victim, STRONG_PASSWORD, Cookie=f"{COOKIE}={brought}")
            assert response.status == 200
            issued = response.cookies[COOKIE].value
            assert issued != brought
            async with raw.get(
                f"{url}/api/v1/whoami", headers={"Cookie": f"{COOKIE}={issued}"}
            ) as who:
                assert (await who.json())["id"] == victim_user.id
        # The planted token still names the attacker: the victim's login did not upgrade it.
        async with raw.get(
            f"{url}/api/v1/whoami", headers={"Cookie": f"{COOKIE}={planted}"}
        ) as who:
            assert (await who.json())["id"] == attacker_user.id


async def test_csrf_token_and_origin_on_unsafe_methods(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    created = await admin.create_server(email, "web-1")
    async with running_stack(env) as stack, jar_client(env) as http:
        url = stack.gateway.url
        body = await signed_in(http, url, email)
        target = f"{url}/api/v1/auth/sessions"  # DELETE: end my other sessions
        refused = {
            "no token": {},
            "wrong token": {"X-CSRF-Token": "nope"},
            "foreign origin": {"X-CSRF-Token": body["csrf_token"], "Origin": "https://evil.test"},
            "null origin": {"X-CSRF-Token": body["csrf_token"], "Origin": "null"},
            "cross-site fetch": {
                "X-CSRF-Token": body["csrf_token"],
                "Sec-Fetch-Site": "cross-site",
            },
        }
        for name, headers in refused.items():
            async with http.delete(target, headers=headers) as response:
                assert response.status == 403, name
                assert (await response.json())["type"].endswith("/csrf"), name
        assert await status_of(http, "DELETE", target, headers=csrf(body)) == 200
        # A tool that sends no Origin only needs the token; safe methods need neither.
        token_only = {"X-CSRF-Token": body["csrf_token"]}
        assert await status_of(http, "DELETE", target, headers=token_only) == 200
        assert await status_of(http, "GET", f"{url}/api/v1/auth/sessions") == 200
        # The login itself refuses a cross-origin form.
        async with http.post(
            f"{url}/api/v1/auth/login",
            json={"email": email, "password": STRONG_PASSWORD},
            headers={"Origin": "https://evil.test"},
        ) as response:
            assert response.status == 403
            assert "Set-Cookie" not in response.headers

    # API-key requests need neither a CSRF token nor an Origin.
    async with (
        running_stack(env) as stack,
        bare_client(env) as raw,
        raw.post(
            f"{stack.gateway.url}/api/v1/metrics",
            headers={"X-API-Key": created.api_key, "Origin": "https://elsewhere.test"},
            json={"samples": [{"ts": time.time(), "metrics": {"cpu.percent": 1.0}}]},
        ) as response,
    ):
        assert response.status == 202, await response.text()


async def test_both_credentials_on_one_request_are_refused(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    created = await admin.create_server(email, "web-1")
    async with running_stack(env) as stack, jar_client(env) as http:
        url = stack.gateway.url
        await signed_in(http, url, email)
        async with http.get(
            f"{url}/api/v1/whoami", headers={"X-API-Key": created.api_key}
        ) as response:
            assert response.status == 400
            assert (await response.json())["type"].endswith("/ambiguous-credentials")


async def test_failed_logins_are_throttled_across_replicas(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    clock = ManualClock()
    me, elsewhere = fake_address(), fake_address()
    async with (
        running_stack(
            env, gateways=2, clock=clock, gateway_overrides={"TRUSTED_PROXY_HOPS": "1"}
        ) as stack,
        jar_client(env) as http,
    ):
        a, b = (g.url for g in stack.gateways)
        for attempt in range(5):
            response = await login(
                http, (a, b)[attempt % 2], email, "wrong password here", **{"X-Forwarded-For": me}
            )
            assert response.status == 401, attempt
        for url in (a, b):
            # Even the right password waits: the throttle does not check it.
            response = await login(http, url, email, STRONG_PASSWORD, **{"X-Forwarded-For": me})
            assert response.status == 429
            retry_after = int(response.headers["Retry-After"])
            assert 1 <= retry_after <= 300
            problem = await response.json()
            assert problem["type"].endswith("/too-many-login-attempts")
            assert "Set-Cookie" not in response.headers
        # Someone failing from another address has not locked the user out of theirs.
        response = await login(http, a, email, STRONG_PASSWORD, **{"X-Forwarded-For": elsewhere})
        assert response.status == 200
        # Waiting as told is enough.
        clock.advance(retry_after)
        response = await login(http, b, email, STRONG_PASSWORD, **{"X-Forwarded-For": me})
        assert response.status == 200


async def test_unknown_email_and_wrong_password_look_the_same(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with (
        running_stack(env, gateway_overrides={"TRUSTED_PROXY_HOPS": "1"}) as stack,
        jar_client(env) as http,
    ):
        url = stack.gateway.url
        answers = []
        for candidate in (email, unique_email()):
            response = await login(
                http, url, candidate, "wrong password here", **{"X-Forwarded-For": fake_address()}
            )
            answers.append(
                (
                    response.status,
                    await response.json(),
                    response.headers.get("WWW-Authenticate"),
                    response.content_type,
                    "Set-Cookie" in response.headers,
                )
            )
        assert answers[0] == answers[1]
        assert answers[0][0] == 401
        assert answers[0][1]["type"].endswith("/invalid-credentials")


async def test_revocation_is_seen_on_another_replica_at_once(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with (
        running_stack(env, gateways=2) as stack,
        jar_client(env) as laptop,
        jar_client(env) as phone,
    ):
        a, b = (g.url for g in stack.gateways)
        mine = await signed_in(laptop, a, email, **{"User-Agent": "laptop-browser"})
        theirs = await signed_in(phone, b, email, **{"User-Agent": "phone-browser"})
        assert await status_of(phone, "GET", f"{b}/api/v1/whoami") == 200

        async with laptop.get(f"{a}/api/v1/auth/sessions") as response:
            sessions = (await response.json())["sessions"]
        by_id = {s["id"]: s for s in sessions}
        assert set(by_id) == {mine["session"]["id"], theirs["session"]["id"]}
        assert by_id[mine["session"]["id"]]["current"] is True
        assert by_id[theirs["session"]["id"]]["current"] is False
        assert by_id[theirs["session"]["id"]]["user_agent"] == "phone-browser"
        assert by_id[theirs["session"]["id"]]["client_address"] == "127.0.0.1"

        revoke = f"{a}/api/v1/auth/sessions/{theirs['session']['id']}"
        assert await status_of(laptop, "DELETE", revoke, headers=csrf(mine)) == 204
        assert await status_of(phone, "GET", f"{b}/api/v1/whoami") == 401
        assert await status_of(laptop, "GET", f"{b}/api/v1/whoami") == 200
        # Not found the second time, nor for another user's session ids.
        assert await status_of(laptop, "DELETE", revoke, headers=csrf(mine)) == 404

        # Ending the other sessions, then disabling the user, from either replica.
        await signed_in(phone, b, email)
        async with laptop.delete(f"{b}/api/v1/auth/sessions", headers=csrf(mine)) as response:
            assert await response.json() == {"revoked": 1}
        assert await status_of(phone, "GET", f"{a}/api/v1/whoami") == 401
        assert await status_of(laptop, "GET", f"{a}/api/v1/whoami") == 200


async def test_disable_user_ends_every_session_at_once(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with (
        running_stack(env, gateways=2) as stack,
        jar_client(env) as first,
        jar_client(env) as second,
    ):
        a, b = (g.url for g in stack.gateways)
        await signed_in(first, a, email)
        await signed_in(second, b, email)
        _, ended = await admin.disable_user(email)
        assert ended == 2
        assert await status_of(first, "GET", f"{b}/api/v1/whoami") == 401
        assert await status_of(second, "GET", f"{a}/api/v1/whoami") == 401
        async with first.post(
            f"{a}/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
        ) as response:
            assert response.status == 403
            assert (await response.json())["type"].endswith("/user-disabled")
            assert "Set-Cookie" not in response.headers
        # A wrong password still gets the ordinary answer: "disabled" is told only to the owner.
        response = await login(first, a, email, "wrong password here")
        assert response.status == 401
        await admin.enable_user(email)
        await signed_in(first, b, email)


async def test_concurrent_misses_share_a_validation_but_never_one_from_before_an_end(
    env: Environment, admin: Admin
) -> None:
    """A dashboard's parallel requests that miss the cache together make one ValidateSession
    call. A request that arrives after the session was ended makes its own, although a
    validation of the same session, read before the end, is still in flight: sessions have no
    memory of ended ones, so only the cache's generation keeps that stale answer from it."""
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with running_stack(env, gateways=1) as stack, jar_client(env) as http:
        url = stack.gateway.url
        await signed_in(http, url, email)
        sessions = stack.gateway.app[SESSION_CACHE]
        sessions.flush()
        backends = stack.gateway.app[BACKENDS]
        held = HeldCalls(backends.auth, "ValidateSession", asyncio.Event(), answer_first=True)
        backends.auth = held  # type: ignore[assignment]
        joined = sessions.stats.joined
        page = [
            asyncio.create_task(status_of(http, "GET", f"{url}/api/v1/whoami")) for _ in range(8)
        ]
        await eventually(lambda: held.calls == 1 and sessions.stats.joined - joined == 7)
        _, ended = await admin.disable_user(email)
        assert ended == 1
        after = asyncio.create_task(status_of(http, "GET", f"{url}/api/v1/whoami"))
        await eventually(lambda: held.calls == 2)
        held.release.set()
        # The requests that raced the end may pass; the one after it may not.
        assert await asyncio.gather(*page) == [200] * 8
        assert await after == 401
        assert held.calls == 2


async def test_password_change_ends_every_other_session(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    new_password = "a much better passphrase 2030"
    async with (
        running_stack(env, gateways=2) as stack,
        jar_client(env) as here,
        jar_client(env) as there,
    ):
        a, b = (g.url for g in stack.gateways)
        mine = await signed_in(here, a, email)
        await signed_in(there, b, email)
        change = f"{a}/api/v1/auth/password"
        cases = [
            (
                {"current_password": "not my password", "new_password": new_password},
                403,
                "wrong-current-password",
            ),
            (
                {"current_password": STRONG_PASSWORD, "new_password": "password1234"},
                422,
                "weak-password",
            ),
            ({"current_password": STRONG_PASSWORD, "new_password": "short"}, 422, "weak-password"),
            ({"current_password": STRONG_PASSWORD}, 422, "invalid-field"),
        ]
        for payload, status, type_ in cases:
            async with here.post(change, json=payload, headers=csrf(mine)) as response:
                assert response.status == status, payload
                assert (await response.json())["type"].endswith(f"/{type_}"), payload
        assert await status_of(there, "GET", f"{b}/api/v1/whoami") == 200

        payload = {"current_password": STRONG_PASSWORD, "new_password": new_password}
        async with here.post(change, json=payload, headers=csrf(mine)) as response:
            assert response.status == 200
            assert await response.json() == {"sessions_ended": 1}
        assert await status_of(there, "GET", f"{b}/api/v1/whoami") == 401
        assert await status_of(here, "GET", f"{b}/api/v1/whoami") == 200
        assert (await login(there, a, email, STRONG_PASSWORD)).status == 401
        assert (await login(there, a, email, new_password)).status == 200


async def test_guessing_the_current_password_is_throttled_with_retry_after(
    env: Environment, admin: Admin
) -> None:
    """ChangePassword answers THROTTLED as data; the gateway makes it the same 429 as login's."""
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with running_stack(env) as stack, jar_client(env) as http:
        url = stack.gateway.url
        mine = await signed_in(http, url, email)
        change = f"{url}/api/v1/auth/password"
        guess = {"current_password": "not my password", "new_password": "a fine passphrase 77"}
        for attempt in range(5):
            async with http.post(change, json=guess, headers=csrf(mine)) as response:
                assert response.status == 403, attempt
        right = {"current_password": STRONG_PASSWORD, "new_password": "a fine passphrase 77"}
        async with http.post(change, json=right, headers=csrf(mine)) as response:
            assert response.status == 429
            assert 1 <= int(response.headers["Retry-After"]) <= 300
            assert (await response.json())["type"].endswith("/too-many-login-attempts")


async def test_activity_lists_sign_ins_and_session_events(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with running_stack(env) as stack, jar_client(env) as http, jar_client(env) as other:
        url = stack.gateway.url
        assert (await login(http, url, email, "wrong password here")).status == 401
        other_body = await signed_in(other, url, email)
        async with other.post(f"{url}/api/v1/auth/logout", headers=csrf(other_body)) as r:
            assert r.status == 204
        mine = await signed_in(http, url, email, **{"User-Agent": "activity-test"})
        await signed_in(other, url, email)
        assert (
            await status_of(http, "DELETE", f"{url}/api/v1/auth/sessions", headers=csrf(mine))
            == 200
        )
        payload = {"current_password": STRONG_PASSWORD, "new_password": "another fine passphrase"}
        assert (
            await status_of(
                http, "POST", f"{url}/api/v1/auth/password", json=payload, headers=csrf(mine)
            )
            == 200
        )

        async with http.get(f"{url}/api/v1/auth/activity") as response:
            assert response.status == 200
            events = (await response.json())["events"]
        assert [e["type"] for e in events] == [
            "password.changed",
            "session.revoked",
            "login.succeeded",
            "login.succeeded",
            "logout",
            "login.succeeded",
            "login.failed",
        ]
        assert all(e["client_address"] == "127.0.0.1" and e["occurred_at"] for e in events)
        assert events[3]["user_agent"] == "activity-test"
        assert events[-1]["details"] == {"reason": "invalid_credentials"}

        async with http.get(f"{url}/api/v1/auth/activity?limit=3") as response:
            page = await response.json()
        assert [e["id"] for e in page["events"]] == [e["id"] for e in events[:3]]
        async with http.get(
            f"{url}/api/v1/auth/activity",
            params={"limit": "3", "page_token": page["next_page_token"]},
        ) as response:
            assert [e["id"] for e in (await response.json())["events"]] == [
                e["id"] for e in events[3:6]
            ]


async def test_session_endpoints_need_a_session_not_an_api_key(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    created = await admin.create_server(email, "web-1")
    async with running_stack(env) as stack, bare_client(env) as raw:
        url = stack.gateway.url
        for method, path in (("GET", "session"), ("GET", "sessions"), ("POST", "logout")):
            async with raw.request(
                method, f"{url}/api/v1/auth/{path}", headers={"X-API-Key": created.api_key}
            ) as response:
                assert response.status == 403, path
                assert (await response.json())["type"].endswith("/session-required")
            assert await status_of(raw, method, f"{url}/api/v1/auth/{path}") == 401


async def test_login_over_plain_http_gets_a_problem_and_no_cookie(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    settings = GatewaySettings.from_env(
        env.gateway_env(
            {
                "KEY_SERVICE_ADDR": "127.0.0.1:1",
                "AUTH_SERVICE_ADDR": "127.0.0.1:1",
                "INGEST_SERVICE_ADDR": "127.0.0.1:1",
            }
        )
    )
    async with TestClient(TestServer(create_plain_http_app(settings))) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
        )
        assert response.status == 403
        assert response.content_type == "application/problem+json"
        assert (await response.json())["type"].endswith("/https-required")
        assert "Set-Cookie" not in response.headers
        # A session cookie sent over plain HTTP is not looked at either.
        response = await client.get(
            "/api/v1/auth/session", headers={"Cookie": f"{COOKIE}={'x' * 43}"}
        )
        assert response.status == 403
        assert "Set-Cookie" not in response.headers


class FlakyProxy:
    """A TCP proxy to Redis that can be cut (every connection dropped and new ones refused)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._up = True
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self._up:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers |= {writer, up_writer}
        pumps = [
            asyncio.create_task(self._pump(reader, up_writer)),
            asyncio.create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        await asyncio.gather(*pumps, return_exceptions=True)
        self._tasks.difference_update(pumps)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            self._writers.discard(writer)

    async def cut(self) -> None:
        self._up = False
        for task in list(self._tasks):
            task.cancel()
        for writer in list(self._writers):
            writer.close()
        await asyncio.sleep(0)

    def restore(self) -> None:
        self._up = True

    async def close(self) -> None:
        await self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


@contextlib.asynccontextmanager
async def auth_behind_proxy(env: Environment) -> AsyncIterator[tuple[str, FlakyProxy]]:
    """A stack whose auth service reaches Redis through a FlakyProxy; yields the gateway URL."""
    target = urlsplit(env.redis_url)
    proxy = FlakyProxy(target.hostname or "127.0.0.1", target.port or 6379)
    await proxy.start()
    db = target.path or "/0"
    settings = AuthSettings.from_env(
        env.service_env(REDIS_URL=f"redis://127.0.0.1:{proxy.port}{db}")
    )
    async with running_stack(env, gateways=0) as stack:
        auth = await create_auth_server(settings)
        await auth.start()
        gateway = await start_gateway(
            env,
            {**stack.backends, "AUTH_SERVICE_ADDR": f"127.0.0.1:{auth.port}"},
            RPC_TIMEOUT_SECONDS="3",
            # Every session request reaches the auth service. (With a cache, a session cached
            # before the cut still answers: it cannot have ended, since ending one needs Redis.)
            SESSION_CACHE_SIZE="0",
        )
        try:
            yield gateway.url, proxy
        finally:
            await gateway.runner.cleanup()
            await auth.stop(0.5)
            await proxy.close()


async def test_redis_down_fails_closed_and_recovers(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with auth_behind_proxy(env) as (url, proxy), jar_client(env) as http:
        await signed_in(http, url, email)
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200
        await proxy.cut()
        async with http.get(f"{url}/api/v1/whoami") as response:
            assert response.status == 503
            assert "Retry-After" in response.headers
        assert (await login(http, url, email, STRONG_PASSWORD)).status == 503
        proxy.restore()
        # No restart: the same session works again as soon as Redis answers.
        assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200
