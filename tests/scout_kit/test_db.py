"""Migrations are versioned, idempotent and safe when replicas start together; a bounded
transaction leaves no statement running in PostgreSQL past its bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib import resources

import aiopg
import psycopg2
import pytest

from scout_kit.db import (
    StatementTimeout,
    bounded_session,
    bounded_transaction,
    close_pool,
    create_pool,
    migrate,
)
from tests.conftest import ADMIN_POSTGRES_URL


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"scout_test_mig_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(ADMIN_POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    yield f"{ADMIN_POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


async def test_replicas_migrating_at_once_apply_each_migration_once(fresh_database: str) -> None:
    pools = [await create_pool(fresh_database, maxsize=1) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(migrate(pool, "keys", "key_service.migrations") for pool in pools)
        )
        # One replica applies every migration of the package; the others find nothing to do.
        files = sorted(
            p.name
            for p in resources.files("key_service.migrations").iterdir()
            if p.name.endswith(".sql")
        )
        assert sorted(len(r) for r in results) == [0, 0, 0, len(files)]
        assert await migrate(pools[0], "keys", "key_service.migrations") == []
        async with pools[0].acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT version, name FROM keys.schema_migrations ORDER BY version")
            assert await cur.fetchall() == [(int(f[:4]), f) for f in files]
    finally:
        for pool in pools:
            await close_pool(pool)


async def test_a_failing_migration_leaves_nothing_behind(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, maxsize=1)
    try:
        with pytest.raises(psycopg2.Error):
            await migrate(pool, "broken", "tests.scout_kit.broken_migrations")
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT count(*) FROM broken.schema_migrations")
            assert await cur.fetchone() == (1,)
            await cur.execute("SELECT to_regclass('broken.half_made')")
            assert await cur.fetchone() == (None,)
    finally:
        await close_pool(pool)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[aiopg.Pool]:
    opened = await create_pool(database_url, maxsize=3)
    yield opened
    await close_pool(opened)


async def _running(pool: aiopg.Pool, marker: str) -> list[tuple[object, ...]]:
    """Backends of this test's database busy with a statement carrying the marker."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT pid, state FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND state <> 'idle' AND position(%s in query) > 0",
            (marker,),
        )
        return list(await cur.fetchall())


def _marker() -> str:
    return f"bounded-{uuid.uuid4().hex}"


async def test_a_bounded_transaction_commits_with_its_bound_set(pool: aiopg.Pool) -> None:
    table = f"bounded_{uuid.uuid4().hex[:8]}"
    async with bounded_transaction(pool, 0.25) as cur:
        await cur.execute("SHOW statement_timeout")
        assert await cur.fetchone() == ("250ms",)
        await cur.execute("SHOW jit")
        assert await cur.fetchone() == ("off",)
        await cur.execute(f"CREATE TABLE {table} (x int)")
    async with pool.acquire() as conn, conn.cursor() as cur:
        # The bound was local to the transaction.
        await cur.execute("SHOW statement_timeout")
        assert await cur.fetchone() == ("0",)
        await cur.execute(f"DROP TABLE {table}")


async def test_the_server_stops_a_statement_past_its_bound(pool: aiopg.Pool) -> None:
    marker = _marker()
    table = f"bounded_{uuid.uuid4().hex[:8]}"

    async def work() -> None:
        async with bounded_transaction(pool, 0.2, grace=30.0) as cur:
            await cur.execute(f"CREATE TABLE {table} (x int)")
            await cur.execute(f"SELECT pg_sleep(30) /* {marker} */")

    with pytest.raises(StatementTimeout):
        await work()
    assert await _running(pool, marker) == []
    async with pool.acquire() as conn, conn.cursor() as cur:
        # Rolled back, and the connection went back to the pool in a usable state.
        await cur.execute("SELECT to_regclass(%s)", (table,))
        assert await cur.fetchone() == (None,)


async def test_a_client_that_gives_up_ends_the_backend(pool: aiopg.Pool) -> None:
    # A server that does not enforce the bound (here: the statement lifts it): the client's own
    # timeout closes the connection, and the backend is ended rather than left running.
    marker = _marker()

    async def work() -> None:
        async with bounded_transaction(pool, 0.2, grace=0.3) as cur:
            await cur.execute("SET LOCAL statement_timeout = 0")
            await cur.execute(f"SELECT pg_sleep(60) /* {marker} */")

    with pytest.raises(StatementTimeout):
        await work()
    assert await _running(pool, marker) == []


async def test_a_cancelled_task_leaves_no_statement_running(pool: aiopg.Pool) -> None:
    marker = _marker()
    started = asyncio.Event()

    async def work() -> None:
        async with bounded_transaction(pool, 60.0) as cur:
            started.set()
            await cur.execute(f"SELECT pg_sleep(60) /* {marker} */")

    task = asyncio.create_task(work())
    await started.wait()
    for _ in range(500):
        if await _running(pool, marker):
            break
        await asyncio.sleep(0.01)
    assert await _running(pool, marker) != []
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _running(pool, marker) == []


async def test_a_bounded_session_resets_its_bounds_on_leaving(database_url: str) -> None:
    marker = _marker()
    single = await create_pool(database_url, maxsize=1)
    try:
        async with single.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SHOW jit")
            jit = await cur.fetchone()

        async def work() -> None:
            async with bounded_session(single, 0.2, grace=30.0) as cur:
                await cur.execute("SHOW statement_timeout")
                assert await cur.fetchone() == ("200ms",)
                await cur.execute(f"SELECT pg_sleep(30) /* {marker} */")

        with pytest.raises(StatementTimeout):
            await work()
        async with single.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SHOW statement_timeout")
            assert await cur.fetchone() == ("0",)
            await cur.execute("SHOW jit")
            assert await cur.fetchone() == jit
    finally:
        await close_pool(single)
