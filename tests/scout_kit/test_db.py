"""Migrations are versioned, idempotent and safe when replicas start together; a bounded
transaction leaves no statement running in PostgreSQL past its bound."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from importlib import resources

import aiopg
import psycopg2
import psycopg2.extensions
import pytest

from devstack.ports import free_ports
from scout_kit.db import (
    StatementTimeout,
    bounded_session,
    bounded_transaction,
    close_pool,
    create_pool,
    host_count,
    migrate,
)
from tests.admin_support import admin_settings
from tests.conftest import ADMIN_POSTGRES_URL
from tests.stack import Environment


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


def multi_host(dsn: str, first: str) -> str:
    """`dsn` with `first` listed before its own host, as an operator lists primary candidates."""
    scheme, rest = dsn.split("://", 1)
    userinfo, _, hostpath = rest.rpartition("@")
    prefix = f"{userinfo}@" if userinfo else ""
    separator = "&" if "?" in hostpath else "?"
    return f"{scheme}://{prefix}{first},{hostpath}{separator}target_session_attrs=read-write"


async def test_a_multi_host_dsn_skips_a_dead_host(env: Environment, fresh_database: str) -> None:
    (dead,) = free_ports(1)
    dsn = multi_host(fresh_database, f"127.0.0.1:{dead}")
    assert host_count(dsn) == 2
    # The services accept it as DATABASE_URL...
    settings = admin_settings(env, dsn)
    # ...and every connection the pool opens goes to the live, read-write host.
    pool = await create_pool(settings.database_url.reveal(), maxsize=3)
    try:
        assert await migrate(pool, "keys", "key_service.migrations")

        async def port() -> tuple[int, bool]:
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("SELECT inet_server_port(), pg_is_in_recovery()")
                row = await cur.fetchone()
                await asyncio.sleep(0.01)  # hold it, so the pool opens more than one
                return int(row[0]), bool(row[1])

        expected = psycopg2.extensions.parse_dsn(fresh_database).get("port", "5432")
        assert set(await asyncio.gather(*(port() for _ in range(6)))) == {(int(expected), False)}
        assert pool.size >= 2
    finally:
        await close_pool(pool)


async def test_every_connection_checks_its_client_and_keeps_the_dsn_options(
    fresh_database: str,
) -> None:
    """A statement whose client is gone must not run on for minutes holding locks."""
    pool = await create_pool(f"{fresh_database}?options=-c%20statement_timeout%3D7s", maxsize=1)
    try:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT current_setting('client_connection_check_interval'),"
                " current_setting('idle_in_transaction_session_timeout'),"
                " current_setting('statement_timeout')"
            )
            assert await cur.fetchone() == ("2s", "1min", "7s")
    finally:
        await close_pool(pool)


async def test_a_statement_whose_client_went_away_ends(fresh_database: str) -> None:
    pool = await create_pool(fresh_database, maxsize=1)
    try:
        async with pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_backend_pid()")
            (pid,) = await cur.fetchone()
            running = asyncio.ensure_future(cur.execute("SELECT pg_sleep(600)"))
            await asyncio.sleep(0.2)
            conn.close()  # the client is gone, as a timed-out or killed client would be
            running.cancel()
        observer = await create_pool(fresh_database, maxsize=1)
        try:
            async with observer.acquire() as conn, conn.cursor() as cur:
                async with asyncio.timeout(30):
                    while True:
                        await cur.execute(
                            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (pid,)
                        )
                        if await cur.fetchone() == (0,):
                            break
                        await asyncio.sleep(0.2)
        finally:
            await close_pool(observer)
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
