"""The servers and keys API as a signed-in user drives it through the gateway."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp

from scout_admin.commands import Admin
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.keys_support import whoami_status
from tests.gateway.test_sessions import ORIGIN, jar_client
from tests.stack import Environment, client_session, running_stack

KEY_FORMAT = re.compile(r"^[0-9a-f]{64}$")


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


async def _sign_in(http: aiohttp.ClientSession, url: str, admin: Admin) -> dict[str, str]:
    """A new user of a new account; returns the headers unsafe requests need."""
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with http.post(
        f"{url}/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    ) as response:
        assert response.status == 200
        body = await response.json()
    return {"X-CSRF-Token": body["csrf_token"], "Origin": ORIGIN}


async def _call(
    http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any
) -> tuple[int, Any]:
    async with http.request(method, url, **kwargs) as response:
        body = await response.json() if response.status != 204 else None
        return response.status, body


async def test_create_list_get_rotate_delete(env: Environment, admin: Admin) -> None:
    async with (
        running_stack(env, gateways=3) as stack,
        jar_client(env) as http,
        client_session(env) as agent,
    ):
        first, *others = [g.url for g in stack.gateways]
        csrf = await _sign_in(http, first, admin)
        status, created = await _call(
            http, "POST", f"{first}/api/v1/servers", json={"name": "  web-1 "}, headers=csrf
        )
        assert status == 201
        old_key = created["api_key"]
        assert KEY_FORMAT.match(old_key)
        server = created["server"]
        assert server["name"] == "web-1"
        assert server["key_hint"] == old_key[-4:]
        assert server["key_last_used_at"] is None and server["last_seen_at"] is None
        server_url = f"{first}/api/v1/servers/{server['id']}"

        status, listing = await _call(http, "GET", f"{first}/api/v1/servers")
        assert status == 200 and [s["id"] for s in listing["servers"]] == [server["id"]]
        status, fetched = await _call(http, "GET", server_url)
        assert status == 200 and fetched["server"]["id"] == server["id"]
        assert old_key not in str(listing) + str(fetched)

        for url in (first, *others):
            assert await whoami_status(agent, url, old_key) == 200  # warm every replica's cache
        status, rotated = await _call(http, "POST", f"{server_url}/api-key/rotate", headers=csrf)
        assert status == 200
        new_key = rotated["api_key"]
        assert KEY_FORMAT.match(new_key) and new_key != old_key
        assert rotated["server"]["key_hint"] == new_key[-4:]
        assert rotated["old_key_valid_until"] is None
        for url in (first, *others):
            assert await whoami_status(agent, url, old_key) == 401
            assert await whoami_status(agent, url, new_key) == 200

        status, _ = await _call(http, "DELETE", server_url, headers=csrf)
        assert status == 204
        for url in (first, *others):
            assert await whoami_status(agent, url, new_key) == 401
        status, problem = await _call(http, "GET", server_url)
        assert status == 404 and problem["status"] == 404
        status, _ = await _call(http, "DELETE", server_url, headers=csrf)
        assert status == 404


async def test_grace_window_through_the_api(env: Environment, admin: Admin) -> None:
    async with running_stack(env) as stack, jar_client(env) as http, client_session(env) as agent:
        url = stack.gateway.url
        csrf = await _sign_in(http, url, admin)
        _, created = await _call(
            http, "POST", f"{url}/api/v1/servers", json={"name": "db"}, headers=csrf
        )
        rotate = f"{url}/api/v1/servers/{created['server']['id']}/api-key/rotate"
        for bad in (
            {"grace_seconds": -1},
            {"grace_seconds": 86_401},
            {"grace_seconds": "60"},
            {"grace_seconds": True},
        ):
            status, problem = await _call(http, "POST", rotate, json=bad, headers=csrf)
            assert status == 422, bad
            assert "grace_seconds" in problem["detail"]
        assert await whoami_status(agent, url, created["api_key"]) == 200  # nothing rotated
        status, rotated = await _call(
            http, "POST", rotate, json={"grace_seconds": 3600}, headers=csrf
        )
        assert status == 200 and rotated["old_key_valid_until"] is not None
        assert await whoami_status(agent, url, created["api_key"]) == 200
        assert await whoami_status(agent, url, rotated["api_key"]) == 200
        # Rotating again ends the earlier grace window at once: at most two keys work.
        _, again = await _call(http, "POST", rotate, headers=csrf)
        assert await whoami_status(agent, url, created["api_key"]) == 401
        assert await whoami_status(agent, url, rotated["api_key"]) == 401
        assert await whoami_status(agent, url, again["api_key"]) == 200


async def test_other_accounts_servers_are_invisible(env: Environment, admin: Admin) -> None:
    async with (
        running_stack(env) as stack,
        jar_client(env) as alice,
        jar_client(env) as bob,
        client_session(env) as agent,
    ):
        url = stack.gateway.url
        alice_csrf = await _sign_in(alice, url, admin)
        bob_csrf = await _sign_in(bob, url, admin)
        _, created = await _call(
            alice, "POST", f"{url}/api/v1/servers", json={"name": "secret"}, headers=alice_csrf
        )
        server_url = f"{url}/api/v1/servers/{created['server']['id']}"
        for method, path in (
            ("GET", ""),
            ("GET", "/activity"),
            ("DELETE", ""),
            ("POST", "/api-key/rotate"),
        ):
            status, problem = await _call(bob, method, server_url + path, headers=bob_csrf)
            assert status == 404, (method, path)
            assert problem["title"] == "Not Found"
        _, listing = await _call(bob, "GET", f"{url}/api/v1/servers")
        assert listing["servers"] == []
        assert await whoami_status(agent, url, created["api_key"]) == 200  # untouched


async def test_bad_input_gets_a_clear_problem(env: Environment, admin: Admin) -> None:
    async with running_stack(env) as stack, jar_client(env) as http:
        url = f"{stack.gateway.url}/api/v1/servers"
        csrf = await _sign_in(http, stack.gateway.url, admin)
        cases: list[tuple[dict[str, Any], int]] = [
            ({"json": {}}, 422),
            ({"json": {"name": ""}}, 422),
            ({"json": {"name": "x" * 101}}, 422),
            ({"json": {"name": "tab\there"}}, 422),
            ({"json": {"name": 5}}, 422),
            ({"json": ["web"]}, 400),
            ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, 400),
            ({"data": b"name=web"}, 415),
            ({"json": {"name": "web"}, "headers": {"Content-Encoding": "gzip"}}, 415),
            ({"json": {"name": "x" * 70_000}}, 413),
            (  # streamed without a Content-Length: the cap holds as it arrives
                {
                    "data": _chunks(b'{"name": "' + b"x" * 70_000 + b'"}'),
                    "headers": {"Content-Type": "application/json"},
                },
                413,
            ),
        ]
        for kwargs, expected in cases:
            headers = {**csrf, **kwargs.pop("headers", {})}
            async with http.post(url, headers=headers, **kwargs) as response:
                assert response.status == expected, kwargs
                assert response.content_type == "application/problem+json"
        _, listing = await _call(http, "GET", url)
        assert listing["servers"] == []  # nothing was created by any of them


async def test_rotation_is_recorded_with_the_user_and_address(
    env: Environment, admin: Admin
) -> None:
    async with running_stack(env) as stack, jar_client(env) as http:
        url = stack.gateway.url
        csrf = await _sign_in(http, url, admin)
        _, created = await _call(
            http, "POST", f"{url}/api/v1/servers", json={"name": "app"}, headers=csrf
        )
        server_url = f"{url}/api/v1/servers/{created['server']['id']}"
        await _call(http, "POST", f"{server_url}/api-key/rotate", headers=csrf)
        _, activity = await _call(http, "GET", f"{server_url}/activity")
        rotated, created_event = activity["events"]
        assert rotated["type"] == "key.rotated" and created_event["type"] == "key.created"
        for event in (rotated, created_event):
            assert event["actor"].startswith("user:")
            assert event["client_address"] == "127.0.0.1"


async def test_no_replica_accepts_the_old_key_after_the_rotate_response(
    env: Environment, admin: Admin
) -> None:
    loop = asyncio.get_running_loop()
    async with (
        running_stack(env, gateways=3) as stack,
        jar_client(env) as http,
        client_session(env) as agents,
    ):
        first = stack.gateway.url
        csrf = await _sign_in(http, first, admin)
        _, created = await _call(
            http, "POST", f"{first}/api/v1/servers", json={"name": "busy"}, headers=csrf
        )
        old_key = created["api_key"]
        rotate_url = f"{first}/api/v1/servers/{created['server']['id']}/api-key/rotate"
        results: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def hammer(url: str) -> None:
            while not stop.is_set():
                sent = loop.time()
                results.append((sent, await whoami_status(agents, url, old_key)))

        clients = [asyncio.create_task(hammer(g.url)) for g in stack.gateways for _ in range(2)]
        await asyncio.sleep(0.3)
        status, _ = await _call(http, "POST", rotate_url, headers=csrf)
        answered = loop.time()
        assert status == 200
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
    before = [s for t, s in results if t < answered]
    after = [s for t, s in results if t > answered]
    assert 200 in before, "the old key worked on the replicas before the rotation"
    assert after, "requests were sent after the rotate response"
    assert after.count(200) == 0
