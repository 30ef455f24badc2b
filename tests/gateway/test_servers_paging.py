"""Paging of the servers list through the public API: every server exactly once, in a stable order,
whatever the page size; a spoiled page token is a clear 422."""

from __future__ import annotations

from typing import Any

import aiohttp

from scout_admin.commands import Admin
from tests.gateway.keys_support import new_server
from tests.gateway.metrics_support import sign_in
from tests.stack import Environment, client_session, running_stack

SERVERS = 5


async def _page(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Any:
    async with http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def test_pages_hold_every_server_once_in_a_stable_order(
    env: Environment, admin: Admin
) -> None:
    first = await new_server(admin, name="server-0")
    made = [first.server_id]
    for index in range(1, SERVERS):
        made.append((await new_server(admin, first.email, name=f"server-{index}")).server_id)
    async with (
        running_stack(env) as stack,
        client_session(env, cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        base = f"{stack.gateway.url}/api/v1/servers"
        session = await sign_in(http, stack.gateway.url, first.email)
        whole = await _page(http, base, session)
        assert whole["next_page_token"] is None
        in_order = [s["id"] for s in whole["servers"]]
        assert sorted(in_order) == sorted(made)
        for size in (1, 2, SERVERS - 1, SERVERS):
            seen: list[str] = []
            token = ""
            for _ in range(SERVERS + 1):
                page = await _page(http, f"{base}?limit={size}&page_token={token}", session)
                assert len(page["servers"]) <= size
                seen += [s["id"] for s in page["servers"]]
                token = page["next_page_token"]
                if token is None:
                    break
            assert seen == in_order, size
        async with http.get(f"{base}?limit=2&page_token=not-a-token", headers=session) as answer:
            assert answer.status == 422
            assert answer.content_type == "application/problem+json"
            assert "page_token" in (await answer.json())["detail"]
