"""PostgreSQL: an aiopg pool per service, transactions, and versioned migrations per schema."""

from __future__ import annotations

import asyncio
import logging
import re
import zlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from importlib import resources
from typing import Any

import aiopg
import psycopg2.extensions

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def create_pool(dsn: str, *, minsize: int = 1, maxsize: int = 10) -> aiopg.Pool:
    """A pool whose connections are checked before use, so a restarted PostgreSQL is
    recovered from without restarting the service."""
    return await aiopg.create_pool(
        dsn,
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


class StatementTimeout(Exception):
    """A statement of a bounded transaction ran past its bound and was stopped in PostgreSQL
    (by the server's statement_timeout, or by ending its backend once the client gave up)."""


# How much longer than the server's statement_timeout the client waits for an answer before it
# gives up on the connection and ends its backend itself.
CLIENT_GRACE_SECONDS = 2.0
# A backend whose client has gone notices within this (PostgreSQL 14+), should ending it fail.
_CONNECTION_CHECK = "1s"


def _server_cancelled(exc: BaseException) -> bool:
    # aiopg turns a server-side cancel (QueryCanceledError: statement_timeout, or our own
    # pg_cancel_backend) into CancelledError; a real cancel of this task is told by cancelling().
    task = asyncio.current_task()
    return (
        isinstance(exc, asyncio.CancelledError)
        and isinstance(exc.__context__, psycopg2.extensions.QueryCanceledError)
        and not (task is not None and task.cancelling())
    )


async def _end_backend(pool: aiopg.Pool, backend: tuple[int, Any], wait: float) -> None:
    """End the backend of a connection the client closed mid-statement: PostgreSQL would run
    the statement to its end otherwise. Matched by start time too, so a reused pid is safe."""
    pid, started = backend
    try:
        async with asyncio.timeout(wait), pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT pg_terminate_backend(pid, %s) FROM pg_stat_activity"
                " WHERE pid = %s AND backend_start = %s",
                (max(1, int(wait * 1000)), pid, started),
            )
    except (Exception, TimeoutError) as exc:
        log.warning("could not end abandoned backend %d: %r", pid, exc)


_BOUND = (
    "SELECT pid, backend_start, set_config('statement_timeout', %(timeout)s, %(local)s),"
    " set_config('client_connection_check_interval', %(check)s, %(local)s),"
    " set_config('jit', 'off', %(local)s)"
    " FROM pg_stat_activity WHERE pid = pg_backend_pid()"
)
_UNBOUND = "RESET statement_timeout; RESET client_connection_check_interval; RESET jit"


@asynccontextmanager
async def _bounded(
    pool: aiopg.Pool, statement_timeout: float, grace: float, *, transaction: bool
) -> AsyncIterator[Any]:
    millis = max(1, round(statement_timeout * 1000))
    async with pool.acquire() as conn, conn.cursor(timeout=statement_timeout + grace) as cur:
        if transaction:
            await cur.execute("BEGIN")
        backend: tuple[int, Any] | None = None
        try:
            # No JIT: the planner overestimates the rows of a batch (a join on an unnest of
            # marks) and compiling took ten times longer than running (rollup: 2.5 s vs 0.27 s).
            await cur.execute(
                _BOUND,
                {"timeout": f"{millis}ms", "check": _CONNECTION_CHECK, "local": transaction},
            )
            row = await cur.fetchone()
            backend = (row[0], row[1])
            yield cur
            await cur.execute("COMMIT" if transaction else _UNBOUND)
        except BaseException as exc:
            if conn.closed:
                # aiopg closes the connection when the client gives up (its timeout) or this
                # task is cancelled mid-statement; the backend would go on without it.
                if backend is not None and isinstance(exc, TimeoutError | asyncio.CancelledError):
                    await _end_backend(pool, backend, grace)
            else:
                await cur.execute("ROLLBACK" if transaction else _UNBOUND)
            if _server_cancelled(exc):
                raise StatementTimeout(f"a statement ran past {millis} ms") from None
            if isinstance(exc, TimeoutError):
                raise StatementTimeout(f"no answer within {millis} ms and {grace}s") from None
            raise


def bounded_transaction(
    pool: aiopg.Pool, statement_timeout: float, *, grace: float = CLIENT_GRACE_SECONDS
) -> AbstractAsyncContextManager[Any]:
    """A cursor inside BEGIN/COMMIT whose every statement is bounded, for background work.

    The server stops a statement after `statement_timeout` seconds (SET LOCAL); the client waits
    `grace` longer, then closes the connection and ends its backend, so no abandoned statement
    keeps running. Both raise StatementTimeout; a cancel of the calling task ends the backend
    too. Any exception rolls back. JIT is off (see _bounded)."""
    return _bounded(pool, statement_timeout, grace, transaction=True)


def bounded_session(
    pool: aiopg.Pool, statement_timeout: float, *, grace: float = CLIENT_GRACE_SECONDS
) -> AbstractAsyncContextManager[Any]:
    """The same bounds for statements that cannot run in a transaction block (REINDEX
    CONCURRENTLY): an autocommit cursor whose session settings are reset on leaving."""
    return _bounded(pool, statement_timeout, grace, transaction=False)


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
