"""A Redis failover under Sentinel, with real gateway processes: sessions confirmed before it
keep working, a key rotated after it is refused everywhere, nothing is restarted."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import aiohttp
import pytest

from devstack.ports import free_ports
from scout_admin.commands import Admin, open_admin
from scout_admin.settings import Settings as AdminSettings
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.keys_support import new_server, rotate, whoami_status
from tests.gateway.test_sessions import bare_client, jar_client, login, signed_in, status_of
from tests.redis_sentinel import SentinelGroup, sentinel_group
from tests.stack import Environment, running_stack

ROOT = Path(__file__).resolve().parents[2]
KEYS_CHANNEL_SUFFIX = ":events:keys"
WAIT_SECONDS = 30


@contextlib.asynccontextmanager
async def gateway_processes(
    env: Environment, backends: Mapping[str, str], count: int
) -> AsyncIterator[list[str]]:
    """`count` real `python -m gateway` processes, ready (their key cache subscribed)."""
    ports = free_ports(count)
    processes = []
    try:
        for port in ports:
            settings = env.gateway_env(backends, LISTEN_HOST="127.0.0.1", HTTPS_PORT=str(port))
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", env={**os.environ, **settings}, cwd=ROOT,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(process)
        urls = [f"https://localhost:{port}" for port in ports]
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=env.client_ssl())
        ) as http:
            for url in urls:
                await until_status(http, "GET", f"{url}/readyz", 200)
        yield urls
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


async def until_status(
    http: aiohttp.ClientSession, method: str, url: str, wanted: int, **kwargs: object
) -> set[int]:
    """Poll another process until it answers `wanted`; the other statuses seen on the way."""
    seen: set[int] = set()
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            try:
                status = await status_of(http, method, url, **kwargs)
            except aiohttp.ClientError:
                status = 0
            if status == wanted:
                return seen
            seen.add(status)
            await asyncio.sleep(0.05)


async def subscribers(group: SentinelGroup, port: int, prefix: str) -> int:
    client = group.node(port).client()
    try:
        ((_, count),) = await client.pubsub_numsub(prefix + KEYS_CHANNEL_SUFFIX)
    finally:
        await client.aclose()
    return int(count)


@pytest.mark.parametrize("how", ["sentinel-failover", "kill-primary"])
async def test_sessions_and_key_invalidation_follow_a_redis_failover(
    env: Environment, admin: Admin, tmp_path: Path, how: str
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with sentinel_group(tmp_path) as group:
        local = dataclasses.replace(env, redis_variables=tuple(group.env.items()))
        admin_settings = AdminSettings.from_env(
            {"DATABASE_URL": env.database_url, "REDIS_PREFIX": env.redis_prefix, **group.env}
        )
        async with (
            # Sessions are confirmed only once the replica holds them.
            running_stack(
                local, gateways=0, service_overrides={"REDIS_MIN_REPLICAS": "1"}
            ) as stack,
            open_admin(admin_settings) as sentinel_admin,
            gateway_processes(local, stack.backends, 2) as urls,
            jar_client(env) as http,
            jar_client(env) as later,
            bare_client(env) as agent,
        ):
            server = await new_server(sentinel_admin, email)
            await signed_in(http, urls[0], email)
            for url in urls:
                assert await status_of(http, "GET", f"{url}/api/v1/whoami") == 200
                assert await whoami_status(agent, url, server.api_key) == 200  # now cached
            old = await group.master_port()
            assert await subscribers(group, old, env.redis_prefix) == 2

            if how == "sentinel-failover":
                new = await group.failover()
            else:
                new = await group.kill_master()

            for url in urls:
                # During the switch a request may fail closed (503), never as signed out.
                seen = await until_status(http, "GET", f"{url}/api/v1/whoami", 200)
                assert seen <= {0, 503}, seen
            # Both gateways resubscribed on the new master (and left the demoted one).
            async with asyncio.timeout(WAIT_SECONDS):
                while await subscribers(group, new, env.redis_prefix) != 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            if how == "sentinel-failover":
                assert await subscribers(group, old, env.redis_prefix) == 0
            for url in urls:
                assert await whoami_status(agent, url, server.api_key) == 200  # cached again
            new_key = await rotate(sentinel_admin, server)
            for url in urls:
                assert await whoami_status(agent, url, server.api_key) == 401
                assert await whoami_status(agent, url, new_key) == 200

            if how == "kill-primary":
                # No replica is left to confirm a new session: logins fail closed...
                response = await login(later, urls[0], email, STRONG_PASSWORD)
                assert response.status == 503
                assert response.content_type == "application/problem+json"
                # ...until the old primary is back; Sentinel makes it a replica of the new one.
                group.node(old).start()
            # A login the replica has not confirmed in time fails closed; the client retries.
            credentials = {"email": email, "password": STRONG_PASSWORD}
            login_url = f"{urls[1]}/api/v1/auth/login"
            seen = await until_status(later, "POST", login_url, 200, json=credentials)
            assert seen <= {503}, seen
            assert await status_of(later, "GET", f"{urls[0]}/api/v1/whoami") == 200
            assert await status_of(http, "GET", f"{urls[1]}/api/v1/whoami") == 200
