"""PostgreSQL: an aiopg pool per service, transactions, and versioned migrations per schema."""

from __future__ import annotations

import logging
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from importlib import resources
from typing import Any

import aiopg
import psycopg2.extensions

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


# Set on every connection. PostgreSQL notices a client that went away only when it next writes
# to it, so a statement whose client timed out, was cancelled or died would run (and hold its
# locks) to the end: checking the socket every few seconds ends it within that time. A
# connection forgotten inside a transaction releases its locks after a minute.
SESSION_SETTINGS = {
    "client_connection_check_interval": "2s",
    "idle_in_transaction_session_timeout": "60s",
}


def with_session_settings(dsn: str) -> str:
    """`dsn` (URI or key=value, any hosts) with SESSION_SETTINGS added to its `options`; the
    DSN's own options come last, so an operator's choice wins."""
    params = psycopg2.extensions.parse_dsn(dsn)
    ours = " ".join(f"-c {name}={value}" for name, value in SESSION_SETTINGS.items())
    params["options"] = f"{ours} {params.get('options', '')}".strip()
    return str(psycopg2.extensions.make_dsn(**params))


async def create_pool(dsn: str, *, minsize: int = 1, maxsize: int = 10) -> aiopg.Pool:
    """A pool whose connections are checked before use, so a restarted PostgreSQL is
    recovered from without restarting the service."""
    return await aiopg.create_pool(
        with_session_settings(dsn),
        minsize=minsize,
        maxsize=maxsize,
        timeout=10.0,
        pool_recycle=300.0,
        enable_json=False,
        enable_hstore=False,
        enable_uuid=False,
        on_connect=None,
    )


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
