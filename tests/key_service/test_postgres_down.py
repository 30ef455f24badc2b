"""PostgreSQL down: keys are refused, never accepted unchecked, and service resumes by itself."""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from devstack.binaries import find_postgres
from devstack.postgres import PrivatePostgres, unprivileged_user
from scout_admin.commands import open_admin
from tests.admin_support import admin_settings
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.gateway.keys_support import whoami_status
from tests.stack import Environment, client_session, running_stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    programs = find_postgres()
    if programs is None:
        pytest.fail("PostgreSQL's initdb and pg_ctl are required (Debian package postgresql)")
    # Not under pytest's tmp_path: when we are root, PostgreSQL runs as an unprivileged user
    # that must be able to reach its data directory.
    directory = Path(tempfile.mkdtemp(prefix="scout-pg-"))
    postgres = PrivatePostgres(programs, directory, _free_port(), unprivileged_user())
    await postgres.initialise()
    await postgres.start()
    try:
        await postgres.create_database()
        yield postgres
    finally:
        if await postgres.is_running():
            await postgres.stop()
        shutil.rmtree(directory, ignore_errors=True)


async def test_key_checks_fail_closed_while_postgres_is_down_and_recover(
    env: Environment, private_postgres: PrivatePostgres
) -> None:
    local = dataclasses.replace(env, database_url=private_postgres.url)
    settings = admin_settings(env, local.database_url)
    async with open_admin(settings) as admin:
        await admin.migrate()
        email = unique_email()
        await admin.create_user(email, STRONG_PASSWORD, None)
        api_key = (await admin.create_server(email, "db-host")).api_key
    # No key cache: every request is checked with the key service, hence with PostgreSQL.
    async with (
        running_stack(local, gateway_overrides={"KEY_CACHE_SIZE": "0"}) as stack,
        client_session(env) as http,
    ):
        url = stack.gateway.url
        assert await whoami_status(http, url, api_key) == 200
        await private_postgres.stop()
        async with http.get(f"{url}/api/v1/whoami", headers={"X-API-Key": api_key}) as response:
            assert response.status == 503
            assert response.content_type == "application/problem+json"
            assert "Retry-After" in response.headers
        await private_postgres.start()
        status = 503
        async with asyncio.timeout(30):
            while status != 200:  # the pool replaces its broken connections by itself
                status = await whoami_status(http, url, api_key)
                assert status in (200, 503)
                await asyncio.sleep(0.1)
