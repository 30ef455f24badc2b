"""The key repository's statements against real PostgreSQL: the lookup behind ValidateKey (a
prepared statement) and the rotation (one stored function)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiopg
import pytest

from key_service.errors import ServerNotFound
from key_service.models import KeyRejectionReport, KeyUsageReport, key_hint
from key_service.repository import PostgresKeyRepository
from scout_admin.commands import Admin
from scout_kit.db import close_pool, create_pool
from scout_kit.timestamps import format_time
from tests.gateway.keys_support import ServerKey, new_server, rotate
from tests.stack import Environment


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


async def _key_ids(admin: Admin, server_id: str) -> list[str]:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT id::text FROM keys.api_keys WHERE server_id = %s ORDER BY created_at",
            (server_id,),
        )
        return [row[0] for row in await cur.fetchall()]


async def _rolling(admin: Admin, key_id: str, type_: str) -> tuple[Any, ...] | None:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT occurred_at, client_address, key_hint, details, count(*) OVER ()"
            " FROM keys.activity WHERE key_id = %s AND type = %s",
            (key_id, type_),
        )
        row = await cur.fetchone()
        return None if row is None else tuple(row)


async def test_usage_reports_merge_per_key_and_move_the_rolling_event(admin: Admin) -> None:
    server = await new_server(admin)
    (key_id,) = await _key_ids(admin, server.server_id)
    repo = PostgresKeyRepository(admin.pool)
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    # The same key twice in one report (a gateway never sends that; the RPC accepts it), and a
    # key nobody has: counts add up, the latest use's address wins, the stranger is ignored.
    await repo.record_usage(
        [
            KeyUsageReport(key_id, t0 + timedelta(seconds=5), "192.0.2.2", 3),
            KeyUsageReport(key_id, t0, "192.0.2.1", 4),
            KeyUsageReport(str(uuid.uuid4()), t0, "192.0.2.9", 1),
        ]
    )
    # An older report arriving later counts, but moves neither the time nor the address.
    await repo.record_usage([KeyUsageReport(key_id, t0 - timedelta(hours=1), "192.0.2.3", 2)])
    found = await repo.find_key(_digest(server.api_key))
    assert found is not None
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT use_count, last_used_at, last_used_address FROM keys.api_keys WHERE id = %s",
            (key_id,),
        )
        assert await cur.fetchone() == (9, t0 + timedelta(seconds=5), "192.0.2.2")
    assert await _rolling(admin, key_id, "key.used") == (
        t0 + timedelta(seconds=5),
        "192.0.2.2",
        key_hint(server.api_key),
        {},
        1,
    )
    await repo.record_usage([])  # nothing to say: no statement at all


async def test_rejection_reports_count_only_ended_keys(admin: Admin) -> None:
    server = await new_server(admin)
    await rotate(admin, server)
    old_id, current_id = await _key_ids(admin, server.server_id)
    repo = PostgresKeyRepository(admin.pool)
    t0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    await repo.record_rejections(
        [
            KeyRejectionReport(old_id, t0, "192.0.2.1", 2),
            KeyRejectionReport(old_id, t0 + timedelta(seconds=1), "192.0.2.4", 1),
            KeyRejectionReport(current_id, t0, "192.0.2.1", 5),  # a current key is not rejected
        ]
    )
    assert await _rolling(admin, old_id, "key.rejected") == (
        t0 + timedelta(seconds=1),
        "192.0.2.4",
        key_hint(server.api_key),
        {"reason": "rotated", "attempts": 3},
        1,
    )
    assert await _rolling(admin, current_id, "key.rejected") is None


async def _waiting_for_locks(admin: Admin, count: int) -> None:
    """Until `count` sessions of this database wait for a lock."""
    for _ in range(500):
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            (waiting,) = await cur.fetchone()
        if waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{count} sessions never waited for a lock")


def _rotation(repo: PostgresKeyRepository, server: ServerKey, now: datetime) -> asyncio.Task[Any]:
    """A rotation of `server` (no grace window) started in the background."""
    return asyncio.create_task(
        repo.rotate_key(
            account_id=server.account_id,
            server_id=server.server_id,
            key_sha256=os.urandom(32),
            hint="wxyz",
            actor="user:test",
            address="",
            now=now,
            grace_until=now,
        )
    )


@contextlib.asynccontextmanager
async def _own_pool(env: Environment) -> AsyncIterator[aiopg.Pool]:
    """A pool of its own, so a blocking session and two waiting ones never wait for a slot."""
    pool = await create_pool(env.database_url, maxsize=3)
    try:
        yield pool
    finally:
        await close_pool(pool)


async def test_a_usage_report_and_a_rotation_sharing_keys_do_not_deadlock(
    admin: Admin, env: Environment
) -> None:
    """The interleaving that deadlocked when a rotation locked its keys in the order it changed
    them (the grace-window key, then the current one) and a report locked them in id order:
    the rotation holds the grace key and wants the current one, the report holds the current
    one and wants the grace key. Both now lock in id order, so the second waits for the first."""
    while True:  # a server whose current key sorts before its key in a grace window
        server = await new_server(admin)
        await rotate(admin, server, grace_seconds=3600)
        grace_id, current_id = await _key_ids(admin, server.server_id)
        if current_id < grace_id:
            break
    async with _own_pool(env) as pool:
        repo = PostgresKeyRepository(pool)
        now = datetime.now(UTC)
        async with pool.acquire() as conn, conn.cursor() as blocker:
            await blocker.execute("BEGIN")
            await blocker.execute(
                "SELECT 1 FROM keys.api_keys WHERE id = %s FOR UPDATE", (grace_id,)
            )
            rotation = _rotation(repo, server, now)
            await _waiting_for_locks(admin, 1)
            usage = asyncio.create_task(
                repo.record_usage(
                    [KeyUsageReport(k, now, "192.0.2.1", 1) for k in (current_id, grace_id)]
                )
            )
            await _waiting_for_locks(admin, 2)
            await blocker.execute("COMMIT")
        outcomes = await asyncio.gather(rotation, usage, return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT use_count FROM keys.api_keys WHERE id = ANY(%s::uuid[]) ORDER BY id",
            ([current_id, grace_id],),
        )
        assert [row[0] for row in await cur.fetchall()] == [1, 1]


async def test_a_first_usage_report_and_a_rotation_do_not_deadlock_on_the_server(
    admin: Admin, env: Environment
) -> None:
    """The other interleaving: the report holds the server's keys and inserts a key's first
    `key.used` event, whose foreign-key check reads the server row, while the rotation holds
    that row and waits for a key. A server lock of FOR UPDATE (it was) deadlocks here."""
    server = await new_server(admin)
    other = await new_server(admin)
    (key_id,) = await _key_ids(admin, server.server_id)
    async with _own_pool(env) as pool:
        repo = PostgresKeyRepository(pool)
        now = datetime.now(UTC)
        async with pool.acquire() as conn, conn.cursor() as blocker:
            # An uncommitted rolling event for the key (of another server, so that nothing of
            # this server is held): the report's insert waits to learn whether it conflicts.
            await blocker.execute("BEGIN")
            await blocker.execute(
                "INSERT INTO keys.activity (server_id, account_id, key_id, type, occurred_at)"
                " VALUES (%s, %s, %s, 'key.used', %s)",
                (other.server_id, other.account_id, key_id, now),
            )
            usage = asyncio.create_task(
                repo.record_usage([KeyUsageReport(key_id, now, "192.0.2.1", 1)])
            )
            await _waiting_for_locks(admin, 1)
            rotation = _rotation(repo, server, now)
            await _waiting_for_locks(admin, 2)
            await blocker.execute("ROLLBACK")
        outcomes = await asyncio.gather(usage, rotation, return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, BaseException)] == []
    assert await _rolling(admin, key_id, "key.used") is not None
