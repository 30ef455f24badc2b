"""Helpers for API-key tests: make an account with a server, call the gateway with a key."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from scout_admin.commands import Admin, admin_actor
from tests.conftest import STRONG_PASSWORD, unique_email


@dataclass
class ServerKey:
    email: str
    account_id: str
    server_id: str
    api_key: str


async def new_server(admin: Admin, email: str | None = None, name: str = "web-1") -> ServerKey:
    if email is None:
        email = unique_email()
        await admin.create_user(email, STRONG_PASSWORD, None)
    created = await admin.create_server(email, name)
    return ServerKey(email, created.server.account_id, created.server.id, created.api_key)


async def rotate(admin: Admin, server: ServerKey, grace_seconds: int = 0) -> str:
    rotated = await admin.keys.rotate_key(
        server.account_id, server.server_id, grace_seconds=grace_seconds, actor=admin_actor()
    )
    return rotated.api_key


async def whoami_status(
    http: aiohttp.ClientSession, base_url: str, api_key: str, **headers: str
) -> int:
    headers["X-API-Key"] = api_key
    async with http.get(f"{base_url}/api/v1/whoami", headers=headers) as response:
        await response.read()
        return response.status
