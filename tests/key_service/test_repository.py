"""The key repository's statements against real PostgreSQL: the lookup behind ValidateKey (a
prepared statement) and the rotation (one stored function)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest

from key_service.errors import ServerNotFound
from key_service.models import key_hint
from key_service.repository import PostgresKeyRepository
from scout_admin.commands import Admin
from scout_kit.timestamps import format_time
from tests.gateway.keys_support import new_server, rotate


def _digest(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode()).digest()


async def test_find_key_answers_every_kind_of_key(admin: Admin) -> None:
    repo = PostgresKeyRepository(admin.pool)
    server = await new_server(admin)
    new_key = await rotate(admin, server)
    current = await repo.find_key(_digest(new_key))
    assert current is not None and current.server_id == server.server_id
    assert current.ended_reason is None
    old = await repo.find_key(_digest(server.api_key))
    assert old is not None and old.ended_reason == "rotated"
    assert await repo.find_key(b"\0" * 32) is None


async def test_find_key_prepares_again_on_a_session_that_lost_its_statement(admin: Admin) -> None:
    repo = PostgresKeyRepository(admin.pool)
    server = await new_server(admin)
    assert await repo.find_key(_digest(server.api_key)) is not None  # prepared on some session
    # Every pooled session forgets its prepared statements; the lookups still answer.
    connections = [await admin.pool.acquire() for _ in range(admin.pool.size)]
    try:
        for conn in connections:
            async with conn.cursor() as cur:
                await cur.execute("DEALLOCATE ALL")
    finally:
        for conn in connections:
            admin.pool.release(conn)
    for _ in range(admin.pool.size + 1):
        found = await repo.find_key(_digest(server.api_key))
        assert found is not None and found.key_id


async def test_a_rotation_ends_an_earlier_grace_window_and_queues_both_keys(admin: Admin) -> None:
    server = await new_server(admin)
    second = await rotate(admin, server, grace_seconds=3600)  # the first key keeps an hour
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "DELETE FROM keys.invalidation_outbox WHERE server_id = %s", (server.server_id,)
        )
    repo = PostgresKeyRepository(admin.pool)
    now = datetime.now(UTC)
    record, ended = await repo.rotate_key(
        account_id=server.account_id,
        server_id=server.server_id,
        key_sha256=b"\7" * 32,
        hint="abcd",
        actor="user:test",
        address="192.0.2.7",
        now=now,
        grace_until=now + timedelta(seconds=60),
    )
    assert record.id == server.server_id and record.key_hint == "abcd"
    # The first key's window ends now; the second key gets the new window; both are queued.
    assert [(k.key_sha256, k.valid_until) for k in ended.keys] == [
        (_digest(server.api_key), now),
        (_digest(second), now + timedelta(seconds=60)),
    ]
    assert all(k.reason == "rotated" and k.server_id == server.server_id for k in ended.keys)
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT id, key_sha256 FROM keys.invalidation_outbox WHERE server_id = %s ORDER BY id",
            (server.server_id,),
        )
        queued = await cur.fetchall()
        await cur.execute(
            "SELECT type, actor, client_address, key_hint, details FROM keys.activity"
            " WHERE server_id = %s ORDER BY id DESC LIMIT 1",
            (server.server_id,),
        )
        event = await cur.fetchone()
    assert tuple(row[0] for row in queued) == ended.outbox_ids
    assert [bytes(row[1]) for row in queued] == [k.key_sha256 for k in ended.keys]
    assert event[:4] == ("key.rotated", "user:test", "192.0.2.7", "abcd")
    assert event[4] == {
        "old_key_hint": key_hint(second),
        "old_key_valid_until": format_time(now + timedelta(seconds=60)),
    }
    found = await repo.find_key(_digest(server.api_key))
    assert found is not None and found.valid_until == now


async def test_rotating_a_server_of_another_account_is_not_found(admin: Admin) -> None:
    server = await new_server(admin)
    other = await new_server(admin)
    repo = PostgresKeyRepository(admin.pool)
    now = datetime.now(UTC)
    with pytest.raises(ServerNotFound):
        await repo.rotate_key(
            account_id=other.account_id,
            server_id=server.server_id,
            key_sha256=b"\10" * 32,
            hint="efgh",
            actor="user:test",
            address="",
            now=now,
            grace_until=now,
        )
    still = await repo.find_key(_digest(server.api_key))
    assert still is not None and still.ended_reason is None
