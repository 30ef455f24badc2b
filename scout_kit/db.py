"""PostgreSQL: an aiopg pool per service, transactions, and versioned migrations per schema."""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib import resources
from typing import Any

import aiopg
import psycopg2
import psycopg2.extensions

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def host_count(dsn: str) -> int:
    """How many hosts a libpq DSN (URL or key=value) lists."""
    return len(psycopg2.extensions.parse_dsn(dsn).get("host", "").split(","))


def _chosen_host(dsn: str) -> str:
    """The DSN narrowed to the one host libpq picks from its list (honouring
    target_session_attrs), found with a short blocking connection."""
    conn = psycopg2.connect(dsn)
    try:
        host, port = conn.info.host, conn.info.port
    finally:
        conn.close()
    params = psycopg2.extensions.parse_dsn(dsn)
    params.update(host=host, port=str(port))
    return str(psycopg2.extensions.make_dsn(**params))


class _HostFollowingPool(aiopg.Pool):
    """A pool over a multi-host DSN that asks libpq again which host to use before it opens
    connections, so it follows a promoted standby by itself.

    aiopg cannot be handed the multi-host DSN itself: it watches the socket libpq opened first,
    and libpq closes that socket and opens another when it moves on to the next host (a dead
    host, or a standby refused by target_session_attrs=read-write), which breaks the
    connection. The chosen host's DSN keeps target_session_attrs, so a demoted primary is
    refused and the next fill chooses again."""

    def __init__(self, dsn: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(dsn, *args, **kwargs)
        self._hosts_dsn = dsn

    async def _fill_free_pool(self, override_min: bool) -> None:
        opens = self.size < self.minsize or (
            override_min and not self._free and (not self.maxsize or self.size < self.maxsize)
        )
        if opens:
            loop = asyncio.get_running_loop()
            self._dsn = await loop.run_in_executor(None, _chosen_host, self._hosts_dsn)
        await super()._fill_free_pool(override_min)


async def create_pool(dsn: str, *, minsize: int = 1, maxsize: int = 10) -> aiopg.Pool:
    """A pool whose connections are checked before use, so a restarted PostgreSQL is
    recovered from without restarting the service. A DSN may list several hosts
    (`postgresql://a:5432,b:5432/db?target_session_attrs=read-write`): the pool follows
    whichever libpq chooses."""
    pool_class = _HostFollowingPool if host_count(dsn) > 1 else aiopg.Pool
    pool: aiopg.Pool = await pool_class.from_pool_fill(
        dsn,
        minsize,
        maxsize,
        10.0,
        pool_recycle=300.0,
        enable_json=False,
        enable_hstore=False,
        enable_uuid=False,
        echo=False,
        on_connect=None,
    )
    return pool


@asynccontextmanager
async def transaction(pool: aiopg.Pool) -> AsyncIterator[Any]:
    """A cursor inside BEGIN/COMMIT; any exception rolls back."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        try:
            yield cur
        except BaseException:
            if not conn.closed:
                await cur.execute("ROLLBACK")
            raise
        else:
            await cur.execute("COMMIT")


@asynccontextmanager
async def cursor(pool: aiopg.Pool) -> AsyncIterator[Any]:
    """A cursor in autocommit mode, for single statements."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        yield cur


def _lock_id(schema: str) -> int:
    # A stable 32-bit id per schema: replicas of one service serialize, services don't.
    return zlib.crc32(f"scout-migrations:{schema}".encode())


def load_migrations(package: str) -> list[tuple[int, str, str]]:
    """(version, name, sql) for every NNNN_name.sql file in the package, in order."""
    found = []
    for entry in resources.files(package).iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text()))
    found.sort()
    versions = [version for version, _, _ in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions in {package}")
    return found


async def migrate(pool: aiopg.Pool, schema: str, package: str) -> list[str]:
    """Apply the package's migrations that `schema` lacks, each in its own transaction.

    Replicas starting together take a session advisory lock first, so exactly one applies a
    migration and the others then find it recorded. Returns the names applied here."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", schema):
        raise ValueError(f"bad schema name {schema!r}")
    applied: list[str] = []
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_lock(%s)", (_lock_id(schema),))
        try:
            await cur.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            await cur.execute(
                f"CREATE TABLE IF NOT EXISTS {schema}.schema_migrations ("
                " version integer PRIMARY KEY,"
                " name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            await cur.execute(f"SELECT version FROM {schema}.schema_migrations")
            done = {row[0] for row in await cur.fetchall()}
            for version, name, sql in load_migrations(package):
                if version in done:
                    continue
                await cur.execute("BEGIN")
                try:
                    await cur.execute(f"SET LOCAL search_path TO {schema}")
                    await cur.execute(sql)
                    await cur.execute(
                        f"INSERT INTO {schema}.schema_migrations (version, name) VALUES (%s, %s)",
                        (version, name),
                    )
                except BaseException:
                    await cur.execute("ROLLBACK")
                    raise
                await cur.execute("COMMIT")
                applied.append(name)
                log.info("applied migration %s.%s", schema, name)
        finally:
            if not conn.closed:
                await cur.execute("SELECT pg_advisory_unlock(%s)", (_lock_id(schema),))
    return applied


def is_unique_violation(exc: BaseException) -> bool:
    return getattr(exc, "pgcode", None) == "23505"


async def close_pool(pool: aiopg.Pool) -> None:
    pool.close()
    await pool.wait_closed()


async def open_database(
    resources: AsyncExitStack, dsn: str, *, pool_size: int, schema: str, migrations: str
) -> aiopg.Pool:
    """A service's pool, closed with its other resources, and its schema migrated."""
    pool = await create_pool(dsn, maxsize=pool_size)
    resources.push_async_callback(close_pool, pool)
    await migrate(pool, schema, migrations)
    return pool
