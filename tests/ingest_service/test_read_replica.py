"""A metric query is served by a streaming standby while it is fresh enough (here the bound is
long, so a standby whose replay is paused keeps serving what it has), writes go to the primary."""

from __future__ import annotations

import uuid
from datetime import timedelta

from ingest_service.query_plan import plan_query
from ingest_service.repository import SampleRepository
from ingest_service.samples import micros
from ingest_service.server import build_maintenance
from ingest_service.settings import Settings
from scout_kit.clock import ManualClock
from scout_kit.db import ReadPools, close_pool, create_pool, migrate
from tests.ingest_service.support import MIGRATIONS, T0, sample_write
from tests.postgres_standby import one, pause_replay, primary_and_standby, until_replayed
from tests.stack import Environment


async def test_metric_queries_are_served_by_the_standby(env: Environment) -> None:
    async with primary_and_standby() as pair:
        primary = await create_pool(pair.primary.url, maxsize=4)
        standby = await create_pool(pair.standby.url, minsize=0, maxsize=2)
        try:
            await migrate(primary, "ingest", MIGRATIONS)
            reads = ReadPools(primary, [standby], max_lag=3600.0)
            repository = SampleRepository(primary, "ingest", reads=reads)
            settings = Settings.from_env(env.service_env("ingest", DATABASE_URL=pair.primary.url))
            await build_maintenance(settings, repository, ManualClock(T0)).prepare()
            server, account = str(uuid.uuid4()), str(uuid.uuid4())
            end = T0 + timedelta(minutes=5)

            async def chart() -> list[tuple[float, int]]:
                rows = await repository.buckets(
                    server, account, ["cpu"], 60,
                    lambda stale: plan_query(micros(T0), micros(end), 60, stale), T0, end,
                )  # fmt: skip
                return [
                    (avg, count)
                    for row in rows
                    for avg, count in zip(row.avg, row.count, strict=True)
                ]

            await repository.write([sample_write(server, [(T0, {"cpu": 1.0})], account)], T0)
            await until_replayed(primary, standby)
            assert await chart() == [(1.0, 1)]

            # Replay pauses: the standby keeps the old state, so the chart shows what it has.
            await pause_replay(standby)
            later = T0 + timedelta(minutes=1)
            await repository.write([sample_write(server, [(later, {"cpu": 3.0})], account)], T0)
            assert await chart() == [(1.0, 1)]
            assert reads.served == {"replica": 2}

            await one(standby, "SELECT pg_wal_replay_resume()::text")
            await until_replayed(primary, standby)
            assert await chart() == [(1.0, 1), (3.0, 1)]
        finally:
            await close_pool(standby)
            await close_pool(primary)
