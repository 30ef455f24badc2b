"""Moving the old one-row-per-value table: old-layout rows written by migrations 0001-0002, the
time-series migration applied, the copy interrupted and resumed, everything compared."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

from ingest_service.copier import SampleCopier
from ingest_service.maintenance import Maintenance
from ingest_service.repository import SampleRepository
from ingest_service.server import build_maintenance
from ingest_service.settings import Settings
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.db import load_migrations, migrate
from tests.gateway.metrics_support import stored
from tests.ingest_service.support import MIGRATIONS, T0, query, sample_write
from tests.stack import Environment


async def _old_schema(admin: Admin) -> str:
    """A schema as the service left it before the time-series layout."""
    schema = f"ingest_old_{uuid.uuid4().hex[:10]}"
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(f"CREATE SCHEMA {schema}")
        await cur.execute(
            f"CREATE TABLE {schema}.schema_migrations (version integer PRIMARY KEY,"
            " name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in load_migrations(MIGRATIONS):
            if version <= 2:
                await cur.execute(f"SET search_path TO {schema}; {sql}; RESET search_path")
                await cur.execute(
                    f"INSERT INTO {schema}.schema_migrations VALUES (%s, %s)", (version, name)
                )
    return schema


async def test_old_samples_move_resumably_and_completely(admin: Admin, env: Environment) -> None:
    schema = await _old_schema(admin)
    rng = random.Random(3)
    servers = [str(uuid.uuid4()) for _ in range(3)]
    old: list[tuple[str, str, object, float]] = []
    for server_id in servers:
        for i in range(400):
            ts = T0 - timedelta(days=10) + timedelta(seconds=97 * i)
            for name in rng.sample(["cpu", "mem", "load.1", "disk.root.used"], 3):
                old.append((server_id, name, ts, rng.uniform(0, 100)))
    try:
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                f"INSERT INTO {schema}.samples (server_id, name, ts, value)"
                " SELECT * FROM unnest(%s::uuid[], %s::text[], %s::timestamptz[], %s::float8[])",
                tuple(map(list, zip(*old, strict=True))),
            )
        await migrate(admin.pool, schema, MIGRATIONS)
        clock = ManualClock(T0)
        settings = Settings.from_env(env.service_env(RETENTION_DAYS="30", LATE_SAMPLE_HOURS="720"))
        repository = SampleRepository(admin.pool, schema)
        maintenance: Maintenance = build_maintenance(settings, repository, clock)
        await maintenance.prepare()
        # A sample posted after the upgrade for a time the old table also has: its values win
        # for its metrics, the old table adds the others.
        first_ts = T0 - timedelta(days=10)
        overlap = sample_write(servers[0], [(first_ts, {"cpu": -1.0, "new.metric": 7.0})])
        await repository.write([overlap], T0)

        small = SampleCopier(
            repository,
            maintenance.partitions,
            slice_width=timedelta(hours=3),
            batch_rows=500,
        )
        moved = [await small.step(clock.now()) for _ in range(4)]  # then the process "stops"
        assert all(moved) and 0 < sum(moved) < len(old)  # type: ignore[arg-type]
        counted = await query(admin, f"SELECT moved FROM {schema}.samples_migration")
        assert counted == [(sum(moved),)]  # type: ignore[arg-type]
        resumed = SampleCopier(
            repository,
            maintenance.partitions,
            slice_width=timedelta(hours=7),
            batch_rows=700,
        )
        assert await resumed.run_to_end(clock.now()) == len(old) - sum(moved)  # type: ignore[arg-type]
        assert resumed.done
        tables = await query(
            admin,
            "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'samples'",
            schema,
        )
        assert tables == [(0,)]
        expected = {(s, n, ts): v for s, n, ts, v in old}
        if (servers[0], "cpu", first_ts) in expected:
            expected[servers[0], "cpu", first_ts] = -1.0
        expected[servers[0], "new.metric", first_ts] = 7.0
        got = {}
        for server_id in servers:
            for name, ts, value in await stored(admin, server_id, schema):
                assert (server_id, name, ts) not in got
                got[server_id, name, ts] = value
        assert got == expected
        # The moved data reaches the tiers like any write.
        await maintenance.rollup.run_once(clock.now())
        counts = await query(admin, f"SELECT sum(n * cardinality(mins)) FROM {schema}.rollup_1m")
        assert counts == [(len(expected),)]
    finally:
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(f"DROP SCHEMA {schema} CASCADE")
