"""PostgreSQL: an aiopg pool per service, transactions, and versioned migrations per schema."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import math
import re
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

import aiopg
import psycopg2
import psycopg2.extensions

from scout_kit.settings import Env, Secret, SettingsError

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
    recovered from without restarting the service; every connection carries SESSION_SETTINGS.
    A DSN may list several hosts
    (`postgresql://a:5432,b:5432/db?target_session_attrs=read-write`): the pool follows
    whichever libpq chooses."""
    pool_class = _HostFollowingPool if host_count(dsn) > 1 else aiopg.Pool
    pool: aiopg.Pool = await pool_class.from_pool_fill(
        with_session_settings(dsn),
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
                    # Shielded: a repeated cancel (scout_kit.tasks) must not cut the clean-up.
                    await asyncio.shield(_end_backend(pool, backend, grace))
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


@dataclass(frozen=True)
class ReplicaSettings:
    """Read replicas for reads that may lag (DATABASE_REPLICA_URLS, space-separated, or one per
    line in DATABASE_REPLICA_URLS_FILE), used only while known to be at most
    DATABASE_REPLICA_MAX_LAG_SECONDS behind the primary."""

    urls: tuple[Secret, ...]
    max_lag_seconds: float

    @classmethod
    def from_env(cls, env: Env) -> ReplicaSettings:
        raw = env.from_file("DATABASE_REPLICA_URLS") or env.optional("DATABASE_REPLICA_URLS")
        urls = []
        for item in (raw or "").split():
            if not item.startswith(("postgresql://", "postgres://")):
                raise SettingsError(
                    "DATABASE_REPLICA_URLS must be postgresql:// URLs separated by spaces"
                )
            urls.append(Secret(item))
        max_lag = env.number("DATABASE_REPLICA_MAX_LAG_SECONDS", 5.0, minimum=0.1, maximum=3600.0)
        return cls(tuple(urls), max_lag)


# The position a server has applied: the replay position on a standby, the WAL end on a
# primary (so a primary given as a "replica" counts as caught up).
_APPLIED_LSN = (
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()"
    " ELSE pg_current_wal_lsn() END >= %s::pg_lsn"
)
CHECK_TIMEOUT_SECONDS = 2.0


class _Replica:
    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool
        # Monotonic time at which the replica was last seen to hold everything the primary had
        # committed: its data is at most (now - caught_up_at) old.
        self.caught_up_at = -math.inf
        self.checked_at = -math.inf
        self.lock = asyncio.Lock()


class ReadPools:
    """Where a read goes that may be slightly out of date (metric queries, activity lists).

    A replica serves it only while its staleness is bounded by `max_lag` seconds, by an LSN
    compare: read the primary's WAL position at t0, then the replica's replay position; if the
    replica has reached it, it holds everything committed before t0, and stays at least that
    fresh, so until t0 + max_lag its reads are at most max_lag old. The check runs again when
    half of that has passed. A replica that is behind, or does not answer, is not used (the
    primary serves) until a later check finds it caught up. Reads that decide access (keys,
    sessions' users, rotation) never come here: they use the primary pool directly."""

    def __init__(
        self,
        primary: aiopg.Pool,
        replicas: Sequence[aiopg.Pool] = (),
        max_lag: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self._replicas = [_Replica(pool) for pool in replicas]
        self._max_lag = max_lag
        self._clock = clock
        self._next = 0
        self.served: collections.Counter[str] = collections.Counter()

    async def for_lagging_read(self) -> aiopg.Pool:
        """A replica known to be fresh enough, else the primary."""
        for _ in range(len(self._replicas)):
            replica = self._replicas[self._next % len(self._replicas)]
            self._next += 1
            if await self._fresh(replica):
                self.served["replica"] += 1
                return replica.pool
        self.served["primary"] += 1
        return self.primary

    async def _fresh(self, replica: _Replica) -> bool:
        now = self._clock()
        if now - replica.caught_up_at < self._max_lag / 2:
            return True
        if not replica.lock.locked() and now - replica.checked_at >= self._max_lag / 2:
            async with replica.lock:
                await self._check(replica)
        return self._clock() - replica.caught_up_at < self._max_lag

    async def _check(self, replica: _Replica) -> None:
        started = self._clock()
        replica.checked_at = started
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
                async with cursor(self.primary) as cur:
                    await cur.execute("SELECT pg_current_wal_lsn()::text")
                    (position,) = await cur.fetchone()
                async with cursor(replica.pool) as cur:
                    await cur.execute(_APPLIED_LSN, (position,))
                    (caught_up,) = await cur.fetchone()
        except (psycopg2.Error, OSError, TimeoutError) as exc:
            log.warning("read replica unavailable, reading from the primary: %r", exc)
            return
        if caught_up:
            replica.caught_up_at = started
        else:
            log.info("read replica is behind the primary; reading from the primary")


async def open_read_pools(
    resources: AsyncExitStack, primary: aiopg.Pool, settings: ReplicaSettings, *, pool_size: int
) -> ReadPools:
    """The replicas' pools (connecting on first use, so a replica down at start is no
    reason not to start), closed with the service's other resources."""
    pools = []
    for url in settings.urls:
        pool = await create_pool(url.reveal(), minsize=0, maxsize=pool_size)
        resources.push_async_callback(close_pool, pool)
        pools.append(pool)
    return ReadPools(primary, pools, settings.max_lag_seconds)


# invalid_sql_statement_name: the session no longer has a statement it prepared.
UNKNOWN_STATEMENT = "26000"
DUPLICATE_STATEMENT = "42P05"
# The prepared statements of each session (psycopg2 connection), see PreparedStatement. Weak:
# a session that is closed and collected takes its entry with it.
_PREPARED: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()


class PreparedStatement:
    """A statement PostgreSQL parses (and, once its plan is generic, plans) once per session
    rather than once per execution: for the ingest service's group commit that was a third of
    PostgreSQL's CPU per commit (0.75 to 0.50 ms for ten 20-metric posts, measured), and it
    takes the parsing and planning off every cache miss's key lookup.

    Each pooled connection prepares it on first use; which connections have is remembered by
    the psycopg2 connection object, so a replaced connection prepares it again. The name is
    derived from the text (schema included), so repositories of several schemas can share a
    pool. A session that lost it (UNKNOWN_STATEMENT) is forgotten, and the caller runs it
    again; one that has it although this process did not record it is taken as prepared."""

    def __init__(self, sql: str, types: dict[str, str]) -> None:
        order: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in order:
                order.append(match.group(1))
            return f"${order.index(match.group(1)) + 1}"

        body = re.sub(r"%\((\w+)\)s", number, sql)
        self.name = "scout_" + hashlib.sha256(sql.encode()).hexdigest()[:24]
        self._prepare = f"PREPARE {self.name}({', '.join(types[n] for n in order)}) AS {body}"
        self._execute = f"EXECUTE {self.name}({', '.join(f'%({n})s' for n in order)})"

    async def execute(self, cur: Any, params: dict[str, object]) -> None:
        """Run it on `cur` (an aiopg cursor), preparing it first on that cursor's session."""
        session = cur.connection.raw
        names = _PREPARED.setdefault(session, set())
        if self.name not in names:
            try:
                await cur.execute(self._prepare)
            except Exception as exc:
                # Prepared already (a PREPARE whose answer was lost): the session has it.
                if getattr(exc, "pgcode", None) != DUPLICATE_STATEMENT:
                    raise
            names.add(self.name)
        try:
            await cur.execute(self._execute, params)
        except Exception as exc:
            if getattr(exc, "pgcode", None) == UNKNOWN_STATEMENT:
                names.discard(self.name)
            raise
