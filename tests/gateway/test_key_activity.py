"""What a key may see, and the activity log of its server."""

from __future__ import annotations

from typing import Any

import aiohttp

from scout_admin.commands import Admin
from tests.gateway.keys_support import new_server, rotate
from tests.stack import Environment, client_session, running_stack


async def _get(http: aiohttp.ClientSession, url: str, api_key: str) -> tuple[int, Any]:
    async with http.get(url, headers={"X-API-Key": api_key}) as response:
        return response.status, await response.json()


async def test_a_key_sees_its_own_server_only(env: Environment, admin: Admin) -> None:
    first = await new_server(admin, name="db-1")
    sibling = await new_server(admin, email=first.email, name="db-2")
    stranger = await new_server(admin, name="elsewhere")
    async with running_stack(env) as stack, client_session(env) as http:
        base = f"{stack.gateway.url}/api/v1/servers"
        status, body = await _get(http, f"{base}/{first.server_id}", first.api_key)
        assert status == 200
        server = body["server"]
        assert server["id"] == first.server_id and server["name"] == "db-1"
        assert server["key_hint"] == first.api_key[-4:]
        assert set(server) >= {"key_created_at", "key_last_used_at", "last_seen_at"}
        assert first.api_key not in str(body)
        status, body = await _get(http, base, first.api_key)
        assert status == 200 and [s["id"] for s in body["servers"]] == [first.server_id]
        for other in (sibling, stranger):
            for path in ("", "/activity"):
                status, body = await _get(http, f"{base}/{other.server_id}{path}", first.api_key)
                assert status == 404, path
                assert body["status"] == 404
        status, _ = await _get(http, f"{base}/not-a-uuid", first.api_key)
        assert status == 404


async def test_keys_cannot_create_rotate_or_delete(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack, client_session(env) as http:
        base = f"{stack.gateway.url}/api/v1/servers"
        headers = {"X-API-Key": server.api_key}
        for method, url in (
            ("POST", base),
            ("POST", f"{base}/{server.server_id}/api-key/rotate"),
            ("DELETE", f"{base}/{server.server_id}"),
        ):
            async with http.request(method, url, headers=headers, json={"name": "x"}) as response:
                assert response.status == 403, (method, url)
                assert response.content_type == "application/problem+json"


async def test_activity_shows_the_key_lifecycle(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack, client_session(env) as http:
        gateway = stack.gateway
        base = f"{gateway.url}/api/v1/servers/{server.server_id}"
        assert (await _get(http, base, server.api_key))[0] == 200
        new_key = await rotate(admin, server)
        for _ in range(3):  # an agent that was not updated
            assert (await _get(http, base, server.api_key))[0] == 401
        assert (await _get(http, base, new_key))[0] == 200
        await gateway.usage.flush()
        status, body = await _get(http, f"{base}/activity", new_key)
        assert status == 200
        events = body["events"]
        types = [e["type"] for e in events]
        assert sorted(types) == sorted(
            ["key.created", "key.used", "key.rotated", "key.used", "key.rejected"]
        )
        times = [e["occurred_at"] for e in events]
        assert times == sorted(times, reverse=True)
        rejected = next(e for e in events if e["type"] == "key.rejected")
        assert rejected["key_hint"] == server.api_key[-4:]
        assert rejected["details"] == {"reason": "rotated", "attempts": 3}
        assert rejected["client_address"] == "127.0.0.1"
        rotated = next(e for e in events if e["type"] == "key.rotated")
        assert rotated["actor"].startswith("admin:")
        assert rotated["details"]["old_key_hint"] == server.api_key[-4:]
        used = [e for e in events if e["type"] == "key.used"]
        assert {e["key_hint"] for e in used} == {server.api_key[-4:], new_key[-4:]}

        # Usage is reported in batches: a request costs no write, a flush moves the row.
        status, body = await _get(http, base, new_key)
        assert body["server"]["key_last_used_at"] is not None

        # Pagination, newest first, with no event twice.
        seen: list[str] = []
        url = f"{base}/activity?limit=2"
        while url:
            status, page = await _get(http, url, new_key)
            assert status == 200 and len(page["events"]) <= 2
            seen += [e["id"] for e in page["events"]]
            token = page["next_page_token"]
            url = f"{base}/activity?limit=2&page_token={token}" if token else ""
        assert seen == [e["id"] for e in events]
        for bad in ("limit=0", "limit=201", "limit=x", "page_token=%%%"):
            status, problem = await _get(http, f"{base}/activity?{bad}", new_key)
            assert status == 422, bad
            assert problem["status"] == 422
