"""The key repository's statements against real PostgreSQL: the lookup behind ValidateKey (a
prepared statement) and the rotation (one stored function)."""

from __future__ import annotations

import hashlib

from key_service.repository import PostgresKeyRepository
from scout_admin.commands import Admin
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
