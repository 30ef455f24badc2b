"""`make run`'s private Redis keeps confirmed sessions across a kill (append-only file)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from auth_service.sessions import SessionOwner, SessionState, SessionStore
from devstack.ports import free_ports
from devstack.redis_server import PrivateRedis
from scout_kit.clock import SystemClock
from scout_kit.redis import Keyspace, RedisSettings, create_redis
from scout_kit.settings import Env


async def test_a_killed_private_redis_comes_back_with_its_sessions(tmp_path: Path) -> None:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is required for this test (Debian package redis-server)")
    (port,) = free_ports(1)
    server = PrivateRedis(Path(binary), tmp_path / "redis", port)
    settings = RedisSettings.from_env(Env({"REDIS_URL": server.url}))
    owner = SessionOwner("u1", "a1", "u1@example.com", "U", SystemClock().now())
    await server.start()
    try:
        client = create_redis(settings)
        try:
            created = await SessionStore(client, Keyspace("scout"), SystemClock()).create(
                owner, "127.0.0.1", "test"
            )
        finally:
            await client.aclose()
        assert server.process is not None
        server.process.kill()  # SIGKILL: no SHUTDOWN SAVE, no snapshot; only the AOF remains
        await server.process.wait()
        assert not (server.directory / "dump.rdb").exists()

        await server.start()
        client = create_redis(settings)
        try:
            store = SessionStore(client, Keyspace("scout"), SystemClock())
            validation = await store.validate(created.token, "127.0.0.1")
        finally:
            await client.aclose()
        assert validation.state is SessionState.VALID
        assert validation.session is not None and validation.session.user_id == "u1"
    finally:
        await server.stop()
