"""The time-series layout against real PostgreSQL, each test in a scratch schema: resends and
merges, partitions at the edges of the accepted window, retention by dropping partitions, and
rollup tiers that match the raw values computed here."""

from __future__ import annotations

import asyncio
import itertools
import math
import random
import struct
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import aiopg
import psycopg2.errors
import pytest

from ingest_service import rollup as rollup_module
from ingest_service.committer import GroupCommitter
from ingest_service.partitions import partition_name, partition_start
from ingest_service.query_plan import Plan, Retention, plan_query, served_step, tier_for_step
from ingest_service.repository import SampleRepository
from ingest_service.rollup import RollupJob
from ingest_service.samples import micros
from ingest_service.servicer import IngestServicer
from scout.ingest.v1 import ingest_pb2
from scout_admin.commands import Admin
from scout_kit import db as db_module
from scout_kit.db import StatementTimeout, close_pool, create_pool
from scout_kit.grpc_server import identity_var
from scout_kit.identity import AuthMethod, Identity, PrincipalKind
from scout_kit.sample_rules import MAX_METRICS_PER_SAMPLE
from scout_kit.timestamps import to_timestamp
from tests.gateway.metrics_support import stored
from tests.ingest_service.support import (
    EPOCH,
    T0,
    Buckets,
    Storage,
    assert_matches,
    bucket_rows,
    expected_buckets,
    partitions_of,
    query,
    sample_write,
    scratch_storage,
)
from tests.stack import Environment


async def test_a_sample_is_one_row_and_resends_keep_the_first_value(
    admin: Admin, env: Environment
) -> None:
    async with scratch_storage(admin, env) as storage:
        repo = storage.repository
        server = str(uuid.uuid4())
        first = sample_write(server, [(T0, {"cpu": 1.0, "mem": 2.0})])
        assert await repo.write([first], T0) == 1
        # A plain resend stores nothing; one that adds a metric keeps the stored values and
        # adds only the new metric; a resend of both in one group commit does the same.
        assert await repo.write([first], T0) == 0
        extended = sample_write(server, [(T0, {"cpu": 9.0, "disk": 3.0})], first.account_id)
        assert await repo.write([extended], T0) == 1
        again = sample_write(server, [(T0, {"net": 4.0})], first.account_id)
        await repo.write([again, sample_write(server, [(T0, {"net": 5.0, "x": 6.0})])], T0)
        rows = await stored(admin, server, storage.schema)
        assert rows == [
            ("cpu", T0, 1.0),
            ("disk", T0, 3.0),
            ("mem", T0, 2.0),
            ("net", T0, 4.0),
            ("x", T0, 6.0),
        ]
        (count,) = (await query(admin, f"SELECT count(*) FROM {storage.schema}.samples_raw"))[0]
        assert count == 1


async def test_every_finite_double_is_stored_exactly(admin: Admin, env: Environment) -> None:
    """Values go to PostgreSQL as array text: each must read back as the very same double,
    sign of zero, subnormals and the largest finite values included. (NaN and infinities are
    refused before a write is made: tests/ingest_service/test_samples.py.)"""
    rng = random.Random(11)
    bits = (struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(400))
    values = [
        -0.0,
        0.0,
        5e-324,
        -5e-324,
        2.2250738585072009e-308,  # the largest subnormal
        sys.float_info.min,
        sys.float_info.max,
        -sys.float_info.max,
        1e308,
        0.1,
        1 / 3,
        2.0**53 + 2,
        123456789.0,
        *(v for v in bits if math.isfinite(v)),
    ]
    metrics = {f"m{i:03d}": v for i, v in enumerate(values[:MAX_METRICS_PER_SAMPLE])}
    rest = values[MAX_METRICS_PER_SAMPLE:]
    samples = [(T0, metrics)] + [
        (T0 + timedelta(seconds=1 + i), {f"m{j:03d}": v for j, v in enumerate(chunk)})
        for i, chunk in enumerate(
            rest[k : k + MAX_METRICS_PER_SAMPLE]
            for k in range(0, len(rest), MAX_METRICS_PER_SAMPLE)
        )
    ]
    async with scratch_storage(admin, env) as storage:
        server = str(uuid.uuid4())
        await storage.repository.write([sample_write(server, samples)], T0)
        got = {(name, ts): value for name, ts, value in await stored(admin, server, storage.schema)}
    want = {(name, ts): value for ts, metrics in samples for name, value in metrics.items()}
    assert got.keys() == want.keys()
    for key, value in want.items():
        # Bit for bit: == alone would take -0.0 for 0.0.
        assert struct.pack("<d", got[key]) == struct.pack("<d", value), (key, value, got[key])


async def test_a_group_commit_is_all_or_nothing(admin: Admin, env: Environment) -> None:
    async with scratch_storage(admin, env) as storage:
        server = str(uuid.uuid4())
        good = sample_write(server, [(T0, {"cpu": 1.0})])
        # Far outside every partition: the statement fails, and the good write with it.
        broken = sample_write(server, [(T0 + timedelta(days=400), {"cpu": 2.0})])
        with pytest.raises(psycopg2.errors.CheckViolation) as failed:
            await storage.repository.write([good, broken], T0)
        assert getattr(failed.value, "pgcode", None) == "23514"
        assert await stored(admin, server, storage.schema) == []


async def test_the_prepared_write_survives_a_session_that_lost_it_and_a_shared_pool(
    admin: Admin, env: Environment
) -> None:
    # One connection, so every write below runs on the session that prepared the statement.
    pool = await create_pool(env.database_url, maxsize=1)
    try:
        async with scratch_storage(admin, env) as one, scratch_storage(admin, env) as two:
            first = SampleRepository(pool, one.schema)
            second = SampleRepository(pool, two.schema)
            server = str(uuid.uuid4())
            assert await first.write([sample_write(server, [(T0, {"cpu": 1.0})])], T0) == 1
            async with pool.acquire() as conn, conn.cursor() as cur:
                await cur.execute("DEALLOCATE ALL")  # as after a DISCARD ALL on the session
            later = T0 + timedelta(seconds=5)
            assert await first.write([sample_write(server, [(later, {"cpu": 2.0})])], T0) == 1
            # A session that has the statement although this process did not record it (a
            # PREPARE whose answer was lost) is used as it is.
            db_module._PREPARED.clear()
            latest = later + timedelta(seconds=5)
            assert await first.write([sample_write(server, [(latest, {"cpu": 4.0})])], T0) == 1
            # Another schema's repository on the same session writes into its own tables.
            assert await second.write([sample_write(server, [(T0, {"cpu": 3.0})])], T0) == 1
            assert await stored(admin, server, one.schema) == [
                ("cpu", T0, 1.0),
                ("cpu", later, 2.0),
                ("cpu", latest, 4.0),
            ]
            assert await stored(admin, server, two.schema) == [("cpu", T0, 3.0)]
    finally:
        await close_pool(pool)


async def test_the_accepted_window_always_has_a_partition(admin: Admin, env: Environment) -> None:
    async with scratch_storage(admin, env, RETENTION_DAYS="3") as storage:
        clock = storage.clock
        committer = GroupCommitter(
            storage.repository,
            clock,
            max_queued_values=1000,
            max_batch_values=1000,
            writers=1,
            make_room=storage.maintenance.cover,
        )
        server = str(uuid.uuid4())
        # The late-sample window (48 hours by default) is the oldest a write may be.
        oldest = clock.now() - timedelta(hours=48)
        newest = clock.now() + timedelta(minutes=5)
        await committer.submit([sample_write(server, [(oldest, {"a": 1.0}), (newest, {"a": 2.0})])])
        # The clock runs a week ahead of the partition pass: a write makes its partitions.
        clock.advance(7 * 86400)
        later = clock.now() + timedelta(minutes=5)
        await committer.submit([sample_write(server, [(later, {"a": 3.0})])])
        await committer.close()
        assert [r[1] for r in await stored(admin, server, storage.schema)] == [
            oldest,
            newest,
            later,
        ]


async def test_retention_drops_whole_partitions_once_rolled_up(
    admin: Admin, env: Environment
) -> None:
    async with scratch_storage(admin, env, RETENTION_DAYS="2") as storage:
        clock, maintenance = storage.clock, storage.maintenance
        server = str(uuid.uuid4())
        await storage.repository.write([sample_write(server, [(T0, {"a": 1.0})])], T0)
        partition_day = f"samples_raw_p{T0:%Y%m%d}"
        assert partition_day in await partitions_of(admin, storage.schema, "samples_raw")
        clock.advance(4 * 86400)
        # The minute still waits for its rollup: its raw partition is kept.
        await maintenance.partitions_once()
        assert partition_day in await partitions_of(admin, storage.schema, "samples_raw")
        await maintenance.rollup.run_once(clock.now())
        dropped = await maintenance.partitions_once()
        assert partition_day in dropped
        remaining = await partitions_of(admin, storage.schema, "samples_raw")
        assert partition_day not in remaining
        # Everything from the new horizon to two days ahead is still there.
        assert remaining[0] == f"samples_raw_p{clock.now() - timedelta(days=2):%Y%m%d}"
        assert await stored(admin, server, storage.schema) == []
        # The tiers keep the minute (their retention is longer).
        rows = await query(admin, f"SELECT n, mins FROM {storage.schema}.rollup_1m")
        assert rows == [(1, [1.0])]


def test_a_step_is_rounded_up_to_what_the_kept_data_can_serve() -> None:
    day = 86_400_000_000
    now = micros(T0)
    kept = Retention(raw=7 * day, minutes=90 * day)
    recent, month, year = now - 6 * day, now - 30 * day, now - 365 * day
    # Within the raw retention any step is exact.
    assert [served_step(s, recent, now, kept) for s in (7, 90, 5184, 5400)] == [7, 90, 5184, 5400]
    # Older data is only in the tiers: whole minutes (a 500-point month: 5184 s -> 87 min)...
    assert [served_step(s, month, now, kept) for s in (7, 60, 90, 5184, 5400, 3600)] == [
        60,
        60,
        120,
        5220,
        5400,
        3600,
    ]
    # ... and past the minute tier's retention whole hours.
    assert [served_step(s, year, now, kept) for s in (60, 5400, 7200)] == [3600, 7200, 7200]


async def test_a_query_past_the_raw_retention_is_answered_from_the_tiers(
    admin: Admin, env: Environment
) -> None:
    """A step that would split a tier bucket, over days whose raw samples are gone, is answered
    at the nearest step the tiers serve exactly, and says so; it was planned on raw samples
    alone, so every bucket came back empty."""
    rng = random.Random(5)
    async with scratch_storage(
        admin, env, RETENTION_DAYS="2", ROLLUP_1M_RETENTION_DAYS="5"
    ) as storage:
        clock, maintenance = storage.clock, storage.maintenance
        server, account = str(uuid.uuid4()), str(uuid.uuid4())
        samples = [
            (T0 + timedelta(seconds=3 + 7 * i), {"cpu": round(rng.uniform(0, 100), 2)})
            for i in range(2 * 3600 // 7)
        ]
        await storage.repository.write([sample_write(server, samples, account)], T0)
        committer = GroupCommitter(
            storage.repository, clock, max_queued_values=10, max_batch_values=10, writers=1
        )
        servicer = IngestServicer(
            storage.repository,
            committer,
            clock,
            timedelta(days=2),
            timedelta(hours=1),
            minute_retention=timedelta(days=5),
        )
        start, end = T0, T0 + timedelta(hours=2)

        async def answer(step: int) -> tuple[int, Buckets]:
            request = ingest_pb2.QueryMetricsRequest(
                server_id=server, names=["cpu"], to=to_timestamp(end), step_seconds=step
            )
            getattr(request, "from").CopyFrom(to_timestamp(start))
            token = identity_var.set(
                Identity(PrincipalKind.USER, str(uuid.uuid4()), account, AuthMethod.SESSION)
            )
            try:
                response = await servicer.QueryMetrics(request, None)  # type: ignore[arg-type]
            finally:
                identity_var.reset(token)
            return response.step_seconds, {
                (series.name, EPOCH + timedelta(microseconds=us)): (avg, low, high, count)
                for series in response.series
                for us, avg, low, high, count in zip(
                    series.start_micros,
                    series.avg,
                    series.min,
                    series.max,
                    series.count,
                    strict=True,
                )
            }

        try:
            # Raw samples kept: the step asked for.
            step, got = await answer(90)
            assert step == 90
            assert_matches(got, expected_buckets(samples, start, end, 90))
            clock.advance(4 * 86400)
            await maintenance.rollup.run_once(clock.now())
            assert f"samples_raw_p{T0:%Y%m%d}" in await maintenance.partitions_once()
            # Only the minute tier left: whole minutes, exact.
            step, got = await answer(90)
            assert step == 120
            assert_matches(got, expected_buckets(samples, start, end, 120))
            # The minute tier's 7-day partition holding T0 ends at most 7 days after it.
            week = partition_start(T0, timedelta(days=7))
            clock.advance((week + timedelta(days=12) - clock.now()).total_seconds())
            assert f"rollup_1m_p{week:%Y%m%d}" in await maintenance.partitions_once()
            # Only the hour tier left: whole hours, exact.
            step, got = await answer(5400)
            assert step == 7200
            assert_matches(got, expected_buckets(samples, start, end, 7200))
        finally:
            await committer.close()


async def test_tiers_match_raw_values_through_resends_late_samples_and_replicas(
    admin: Admin, env: Environment
) -> None:
    rng = random.Random(11)
    async with scratch_storage(admin, env) as storage:
        repo, clock = storage.repository, storage.clock
        server = str(uuid.uuid4())
        account = str(uuid.uuid4())
        # Three hours every 7 s, off any boundary; the agent adds a metric after 100 minutes.
        samples = []
        for i in range(3 * 3600 // 7):
            ts = T0 + timedelta(seconds=3.25 + 7 * i)
            metrics = {"cpu": round(rng.uniform(0, 100), 2), "mem": float(rng.randrange(10**9))}
            if i * 7 > 6000:
                metrics["disk"] = rng.uniform(-5, 5)
            samples.append((ts, metrics))
        for first in range(0, len(samples), 200):
            await repo.write([sample_write(server, samples[first : first + 200], account)], T0)
        # Every sample resent, in other groupings: nothing may be counted twice.
        await repo.write([sample_write(server, samples[::3], account)], T0)
        clock.advance(4 * 3600)
        # Two replicas' jobs at once.
        other = RollupJob(storage.maintenance.partitions, storage.schema, batch_size=7)
        await asyncio.gather(
            storage.maintenance.rollup.run_once(clock.now()), other.run_once(clock.now())
        )
        # A late sample inside an already rolled-up minute and hour.
        late = (T0 + timedelta(minutes=30, seconds=1), {"cpu": 1000.0, "late": 1.0})
        samples.append(late)
        await repo.write([sample_write(server, [late], account)], T0)
        start, end = T0 + timedelta(seconds=30), T0 + timedelta(hours=3, minutes=1)
        names = ["cpu", "mem", "disk", "late"]
        for step in (7, 60, 300, 3600, 5400, 7200):
            assert_matches(
                await bucket_rows(storage, server, names, start, end, step),
                expected_buckets(samples, start, end, step),
            )
        await storage.maintenance.rollup.run_once(clock.now())
        (pending,) = (await query(admin, f"SELECT count(*) FROM {storage.schema}.rollup_pending"))[
            0
        ]
        assert pending == 0
        for step in (60, 3600):
            assert_matches(
                await bucket_rows(storage, server, names, start, end, step),
                expected_buckets(samples, start, end, step),
            )


async def test_a_crashed_rollup_pass_leaves_its_marks(admin: Admin, env: Environment) -> None:
    async with scratch_storage(admin, env) as storage:
        server = str(uuid.uuid4())
        await storage.repository.write([sample_write(server, [(T0, {"a": 1.0})])], T0)
        job = storage.maintenance.rollup
        partitions = storage.maintenance.partitions

        async def fail(table_name: str, lo: datetime, hi: datetime) -> int:
            raise RuntimeError("crash between taking the marks and writing the tier")

        original = partitions.ensure
        partitions.ensure = fail  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            await job.run_once(T0 + timedelta(minutes=5))
        partitions.ensure = original  # type: ignore[method-assign]
        marks = await query(admin, f"SELECT tier FROM {storage.schema}.rollup_pending")
        assert marks == [(1,)]
        assert await job.run_once(T0 + timedelta(minutes=5)) == {1: 1, 2: 0}
        assert await job.run_once(T0 + timedelta(hours=2)) == {1: 0, 2: 1}


@pytest.fixture
async def other_sessions(env: Environment) -> AsyncIterator[aiopg.Pool]:
    """Connections beside the service's pool, to hold locks and watch pg_stat_activity."""
    pool = await create_pool(env.database_url, maxsize=3)
    yield pool
    await close_pool(pool)


@asynccontextmanager
async def _locked(sessions: aiopg.Pool, table: str) -> AsyncIterator[int]:
    """Another session holding the table (as a long statement under load would hold the
    rollup up); its backend pid. Released on leaving."""
    async with sessions.acquire() as conn, conn.cursor() as cur:
        await cur.execute("BEGIN")
        await cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        try:
            yield await conn.get_backend_pid()
        finally:
            await cur.execute("ROLLBACK")


async def _rollup_statements(sessions: aiopg.Pool, locker: int) -> list[tuple[object, ...]]:
    """Backends of this test's database busy with a rollup statement, but the locker."""
    async with sessions.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT pid, state, wait_event_type FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND state <> 'idle' AND query LIKE '%%rollup_%%' AND pid <> %s",
            (locker,),
        )
        return list(await cur.fetchall())


async def _two_hours(storage: Storage) -> tuple[str, list[tuple[datetime, dict[str, float]]]]:
    """Two hours of samples every 10 s from one new server; (server id, samples)."""
    server = str(uuid.uuid4())
    samples = [
        (T0 + timedelta(seconds=10 * i), {"cpu": float(i % 97), "mem": float(i * 3)})
        for i in range(720)
    ]
    await storage.repository.write([sample_write(server, samples)], T0)
    return server, samples


async def test_a_rollup_pass_past_its_statement_timeout_stops_and_the_next_completes(
    admin: Admin, env: Environment, other_sessions: aiopg.Pool
) -> None:
    async with scratch_storage(admin, env, MAINTENANCE_STATEMENT_TIMEOUT_SECONDS="0.2") as storage:
        server, samples = await _two_hours(storage)
        job, now = storage.maintenance.rollup, T0 + timedelta(hours=3)
        # The minutes roll up; the hours' statement waits past its bound and is stopped.
        async with _locked(other_sessions, f"{storage.schema}.rollup_1h") as locker:
            with pytest.raises(StatementTimeout):
                await job.run_once(now)
            assert await _rollup_statements(other_sessions, locker) == []
        marks = await query(
            admin, f"SELECT tier, count(*) FROM {storage.schema}.rollup_pending GROUP BY 1"
        )
        assert marks == [(2, 2)]
        assert job.limit == 1000
        # The next pass takes the same hours (in smaller batches) and counts each sample once.
        assert await job.run_once(now) == {1: 0, 2: 2}
        hours = await query(admin, f"SELECT n FROM {storage.schema}.rollup_1h ORDER BY bucket")
        assert hours == [(360,), (360,)]
        start, end = T0, T0 + timedelta(hours=2)
        for step in (60, 3600):
            assert_matches(
                await bucket_rows(storage, server, ["cpu", "mem"], start, end, step),
                expected_buckets(samples, start, end, step),
            )


async def test_one_rollup_pass_runs_at_a_time_per_replica_and_across_replicas(
    admin: Admin, env: Environment, other_sessions: aiopg.Pool
) -> None:
    async with scratch_storage(admin, env) as storage:
        server, samples = await _two_hours(storage)
        now = T0 + timedelta(hours=3)
        first = RollupJob(storage.maintenance.partitions, storage.schema, batch_size=10)
        second = storage.maintenance.rollup
        async with _locked(other_sessions, f"{storage.schema}.rollup_1m") as locker:
            running = asyncio.create_task(first.run_once(now))
            # Wait for the first replica's pass to be stuck behind the lock.
            while not await _rollup_statements(other_sessions, locker):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
            # Its own next call, and another replica with marks left to take, both skip.
            assert await first.run_once(now) == {1: 0, 2: 0}
            assert await second.run_once(now) == {1: 0, 2: 0}
            (waiting,) = await _rollup_statements(other_sessions, locker)
            assert waiting[2] == "Lock"
        assert await running == {1: 120, 2: 2}
        hours = await query(admin, f"SELECT n FROM {storage.schema}.rollup_1h ORDER BY bucket")
        assert hours == [(360,), (360,)]
        start, end = T0, T0 + timedelta(hours=2)
        assert_matches(
            await bucket_rows(storage, server, ["cpu", "mem"], start, end, 60),
            expected_buckets(samples, start, end, 60),
        )


async def test_a_session_holding_the_rollup_lock_keeps_every_pass_from_running(
    admin: Admin, env: Environment, other_sessions: aiopg.Pool
) -> None:
    """What the bench's steady-state measure relies on: the lock a pass takes per transaction
    is refused while another session holds it, and the marks wait."""
    async with scratch_storage(admin, env) as storage:
        await _two_hours(storage)
        job, now = storage.maintenance.rollup, T0 + timedelta(hours=3)
        async with other_sessions.acquire() as conn, conn.cursor() as cur:
            await cur.execute("SELECT pg_advisory_lock(%s)", (job.lock_id,))
            assert await job.run_once(now) == {1: 0, 2: 0}
            await cur.execute("SELECT pg_advisory_unlock(%s)", (job.lock_id,))
        assert await job.run_once(now) == {1: 120, 2: 2}


def _rows_read(plan: dict[str, object], table: str) -> float:
    """Rows the plan's nodes on `table` read (returned or filtered out, over every loop)."""
    own = 0.0
    if plan.get("Relation Name") == table:
        rows = float(plan["Actual Rows"]) + float(plan.get("Rows Removed by Filter", 0))  # type: ignore[arg-type]
        own = rows * float(plan["Actual Loops"])  # type: ignore[arg-type]
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    return own + sum(_rows_read(child, table) for child in children)


async def test_taking_marks_reads_each_mark_once_when_every_server_shares_the_minute(
    admin: Admin, env: Environment
) -> None:
    """10,000 servers mark the same minute: the marks share (tier, bucket). The take once
    joined the marks it locked back on that key, without statistics of the short-lived table,
    and read about half of the minute's marks for each one it deleted (150 ms a pass)."""
    async with scratch_storage(admin, env) as storage:
        marks, limit = 5000, 2000
        await query(
            admin,
            f"INSERT INTO {storage.schema}.rollup_pending (server_id, tier, bucket)"
            " SELECT gen_random_uuid(), 1, %s FROM generate_series(1, %s) RETURNING 1",
            T0,
            marks,
        )
        take = rollup_module._TAKE.replace("{s}", storage.schema)
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            await cur.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + take,
                {"tier": 1, "before": T0 + timedelta(minutes=1), "limit": limit},
            )
            ((explained,),) = await cur.fetchall()
            await cur.execute("ROLLBACK")
        plan = explained[0]["Plan"]
        assert plan["Actual Rows"] == limit
        assert _rows_read(plan, "rollup_pending") <= 2 * marks


def _relations(plan: dict[str, object]) -> set[str]:
    """Every relation a plan's nodes read or write."""
    own = {str(plan["Relation Name"])} if "Relation Name" in plan else set()
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    return own.union(*(_relations(child) for child in children))


async def test_a_rollup_pass_reads_only_the_partitions_of_its_marks(
    admin: Admin, env: Environment
) -> None:
    """A pass's statements bound their time column by the batch's span as constants, so the
    plan holds only the partitions of that span. Bounded by the join alone, it held every
    partition of the month, and without statistics of the newest (a PostgreSQL without
    autovacuum, or before it came by) the planner scanned them all: minutes a pass."""
    async with scratch_storage(admin, env) as storage:
        partitions = storage.maintenance.partitions
        for table in ("samples_raw", "rollup_1m"):
            await partitions.ensure(table, T0 - timedelta(days=5), T0 + timedelta(days=2))
        servers = [str(uuid.uuid4()) for _ in range(3)]
        minute = T0 + timedelta(minutes=7)
        # The one partition of each table that holds the marks' buckets.
        holding = {
            table.name: partition_name(table, partition_start(minute, table.width))
            for table in partitions.tables.values()
        }
        for tier in rollup_module.TIERS:
            bucket = partition_start(minute, tier.width)
            params = rollup_module.batch_params(tier, [(s, bucket) for s in servers])
            async with admin.pool.acquire() as conn, conn.cursor() as cur:
                for statement in (rollup_module._CLEAR, tier.recompute):
                    sql = statement.replace("{s}", storage.schema).replace("{target}", tier.target)
                    await cur.execute("EXPLAIN (FORMAT JSON) " + sql, params)
                    ((explained,),) = await cur.fetchall()
                    read = _relations(explained[0]["Plan"])
                    parts = {r for r in read if r.rsplit("_p", 1)[0] in holding and "_p" in r}
                    assert parts and parts <= set(holding.values()), read


async def test_a_rollup_pass_reads_each_marked_minute_by_its_own_range_scan(
    admin: Admin, env: Environment
) -> None:
    """Few servers, many marks: joined on server_id with the minute as a filter, the planner
    merged on server_id alone and tested every sample of the span against every mark of its
    server (2 servers, 2,000 marks: 24 million pairs, 4 s). Each mark now reads its minute."""
    async with scratch_storage(admin, env) as storage:
        await storage.maintenance.partitions.ensure("samples_raw", T0, T0 + timedelta(days=1))
        servers = [str(uuid.uuid4()) for _ in range(2)]
        minutes = 1000
        await query(
            admin,
            f"INSERT INTO {storage.schema}.samples_raw (server_id, ts, set_id, vals)"
            " SELECT s, %s + g * interval '5 seconds', 1, ARRAY[g, g + 1]::float8[]"
            " FROM unnest(%s::uuid[]) s CROSS JOIN generate_series(0, %s) g RETURNING 1",
            T0,
            servers,
            minutes * 12 - 1,
        )
        tier = rollup_module.TIERS[0]
        marks = [(s, T0 + timedelta(minutes=m)) for m in range(minutes) for s in servers]
        select = tier.recompute.replace("{s}", storage.schema)
        select = select[select.index("SELECT") :]
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(f"ANALYZE {storage.schema}.samples_raw")
            await cur.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + select, rollup_module.batch_params(tier, marks)
            )
            ((explained,),) = await cur.fetchall()
        plan = explained[0]["Plan"]
        assert plan["Actual Rows"] == len(marks)
        # Every sample once (a scan may count a neighbouring row at the edge of its range).
        assert _rows_read(plan, f"samples_raw_p{T0:%Y%m%d}") <= 2 * len(marks) * 12
        assert _join_filtered(plan) == 0


def _join_filtered(plan: dict[str, object]) -> float:
    """Rows a plan's joins produced and then dropped by a join filter, over every loop."""
    own = float(plan.get("Rows Removed by Join Filter", 0))  # type: ignore[arg-type]
    children = plan.get("Plans", [])
    assert isinstance(children, list)
    return own + sum(_join_filtered(child) for child in children)


async def _index_sizes(admin: Admin, schema: str, table: str) -> dict[str, tuple[int, bool]]:
    """Every index of the table's partitions: (bytes, valid)."""
    rows = await query(
        admin,
        "SELECT c.relname, pg_relation_size(c.oid), i.indisvalid FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_inherits h ON h.inhrelid = i.indrelid"
        " JOIN pg_class p ON p.oid = h.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace"
        " WHERE n.nspname = %s AND p.relname = %s",
        schema,
        table,
    )
    return {str(name): (int(size), bool(valid)) for name, size, valid in rows}  # type: ignore[call-overload]


async def test_closed_partitions_are_compacted_once_and_still_refuse_duplicates(
    admin: Admin, env: Environment, other_sessions: aiopg.Pool
) -> None:
    async with scratch_storage(admin, env, COMPACTION_STATEMENT_TIMEOUT_SECONDS="0.5") as storage:
        repo, compaction = storage.repository, storage.maintenance.compaction
        servers = sorted(str(uuid.uuid4()) for _ in range(8))
        account = str(uuid.uuid4())
        # Twelve hours every 30 s, all servers at each time, as agents' posts arrive.
        stamps = [T0 + timedelta(seconds=30 * i) for i in range(12 * 120)]
        for first in range(0, len(stamps), 60):
            batch = stamps[first : first + 60]
            await repo.write(
                [
                    sample_write(s, [(ts, {"a": 1.0, "b": 2.0}) for ts in batch], account)
                    for s in servers
                ],
                T0,
            )
        index = f"samples_raw_p{T0:%Y%m%d}_pkey"
        (before, _) = (await _index_sizes(admin, storage.schema, "samples_raw"))[index]
        # The day is still open.
        assert index not in await compaction.run_once(T0 + timedelta(hours=12))
        now = T0 + timedelta(days=2)
        # A transaction with an older snapshot holds a rebuild back past its bound: stopped,
        # its half-built index left behind.
        async with other_sessions.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            await cur.execute("SELECT 1")
            with pytest.raises(StatementTimeout):
                await compaction.run_once(now)
            await cur.execute("ROLLBACK")
        sizes = await _index_sizes(admin, storage.schema, "samples_raw")
        assert [name for name, (_, valid) in sizes.items() if not valid] != []
        rebuilt = await compaction.run_once(now)
        assert index in rebuilt
        sizes = await _index_sizes(admin, storage.schema, "samples_raw")
        assert all(valid for _, valid in sizes.values())
        assert not any(name.endswith("_ccnew") for name in sizes)
        assert sizes[index][0] < 0.7 * before
        assert await compaction.run_once(now) == []
        # A resend into the compacted day is still stored once.
        resend = sample_write(servers[3], [(stamps[100], {"a": 5.0, "b": 6.0})], account)
        assert await repo.write([resend], now) == 0
        (count,) = (
            await query(
                admin,
                f"SELECT count(*) FROM {storage.schema}.samples_raw WHERE server_id = %s",
                servers[3],
            )
        )[0]
        assert count == len(stamps)


def test_a_query_reads_the_coarsest_tier_its_step_allows() -> None:
    start = micros(T0 - timedelta(days=30)) + 17_000_000
    end = micros(T0) + 5_000_000
    assert [tier_for_step(s) for s in (1, 30, 60, 90, 300, 3600, 5400, 7200)] == [
        None,
        None,
        1,
        None,
        1,
        2,
        1,
        2,
    ]
    plan = plan_query(start, end, 3600, [])
    # A 30-day chart at 1 h: 719 hours from the hour tier, the two partial hours from minutes
    # and the partial minutes from raw samples.
    assert [hi - lo for lo, hi in plan.h1] == [719 * 3_600_000_000]
    assert plan.rows_hint == 719 + 59
    assert plan.raw == [(start, start + 43_000_000), (end - 5_000_000, end)]
    # A stale minute in the middle: its hour comes from minutes, the minute itself from raw.
    stale_minute = micros(T0 - timedelta(days=10))
    stale = plan_query(start, end, 3600, [(1, stale_minute)])
    assert len(stale.h1) == 2
    assert (stale_minute, stale_minute + 60_000_000) in stale.raw
    _assert_covers(stale, start, end)
    # At 90 minutes every other query bucket starts at half past: the hours inside a bucket
    # come from the hour tier, the half hours around them from minutes.
    ninety = 5_400_000_000
    odd = plan_query(start, end, 5400, [(1, stale_minute)])
    _assert_covers(odd, start, end)
    hour = 3_600_000_000
    inside_a_bucket = {
        h
        for h in range(-(-start // hour) * hour, end - hour + 1, hour)
        if h // ninety == (h + hour - 1) // ninety and h != stale_minute // hour * hour
    }
    assert sorted(h for lo, hi in odd.h1 for h in range(lo, hi, hour)) == sorted(inside_a_bucket)
    assert odd.rows_hint < plan_query(start, end, 60, []).rows_hint / 2.5


def _assert_covers(plan: Plan, start: int, end: int) -> None:
    """The plan's intervals cover [start, end) once, without gaps or overlaps."""
    covered = sorted(plan.raw + plan.m1 + plan.h1)
    assert covered[0][0] == start and covered[-1][1] == end
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))


async def test_every_key_holds_the_distribution_column(admin: Admin) -> None:
    """Citus rules: every primary and unique key of the ingest tables includes server_id, and
    no foreign key crosses tables (docs: create_distributed_table by server_id)."""
    keys = await query(
        admin,
        "SELECT c.conrelid::regclass::text, c.contype, array_agg(a.attname::text)"
        " FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid"
        " JOIN pg_namespace n ON n.oid = t.relnamespace"
        " JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY(c.conkey)"
        " WHERE n.nspname = 'ingest' AND c.contype IN ('p', 'u', 'f') AND NOT t.relispartition"
        " AND t.relname <> 'schema_migrations' AND t.relname <> 'samples_migration'"
        " GROUP BY 1, 2, c.oid",
    )
    tables = {str(k[0]) for k in keys}
    assert {"ingest.samples_raw", "ingest.metric_sets", "ingest.rollup_1m"} <= tables
    for table, kind, columns in keys:
        assert kind != "f", table
        assert "server_id" in columns, (table, columns)  # type: ignore[operator]
