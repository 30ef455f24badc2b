"""Helpers for the storage and packing tests: a scratch ingest schema per test, writes, the
stored data read back straight from the tables, and buckets checked against the posted samples."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from ingest_service.maintenance import Maintenance
from ingest_service.query_plan import plan_query
from ingest_service.repository import SampleRepository
from ingest_service.samples import Write, micros
from ingest_service.server import build_maintenance
from ingest_service.settings import Settings
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.db import migrate
from tests.stack import Environment

MIGRATIONS = "ingest_service.migrations"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Expected = dict[tuple[str, datetime], list[float]]
# (avg, min, max, count) per (name, bucket start), as a query answers them.
Buckets = dict[tuple[str, datetime], tuple[float, float, float, int]]
# A fixed, minute-aligned start, so bucket arithmetic in the tests is plain.
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class Storage:
    schema: str
    repository: SampleRepository
    maintenance: Maintenance
    clock: ManualClock


def sample_write(
    server_id: str, samples: list[tuple[datetime, dict[str, float]]], account_id: str = ""
) -> Write:
    return Write(
        server_id,
        account_id or str(uuid.uuid4()),
        [micros(ts) for ts, _ in samples],
        [len(m) for _, m in samples],
        [n for _, m in samples for n in m],
        [v for _, m in samples for v in m.values()],
    )


@asynccontextmanager
async def scratch_storage(
    admin: Admin, env: Environment, *, now: datetime = T0, **overrides: str
) -> AsyncIterator[Storage]:
    """A migrated ingest schema of its own (retention and partition drops touch no other
    test's data), with the service's maintenance built as the factory builds it."""
    schema = f"ingest_t_{uuid.uuid4().hex[:10]}"
    await migrate(admin.pool, schema, MIGRATIONS)
    clock = ManualClock(now)
    settings = Settings.from_env(env.service_env(**overrides))
    repository = SampleRepository(admin.pool, schema)
    maintenance = build_maintenance(settings, repository, clock)
    await maintenance.prepare()
    try:
        yield Storage(schema, repository, maintenance, clock)
    finally:
        async with admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(f"DROP SCHEMA {schema} CASCADE")


async def query(admin: Admin, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(sql, params)
        return list(await cur.fetchall())


async def partitions_of(admin: Admin, schema: str, table: str) -> list[str]:
    rows = await query(
        admin,
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace"
        " WHERE n.nspname = %s AND p.relname = %s ORDER BY 1",
        schema,
        table,
    )
    return [str(r[0]) for r in rows]


def minutes(count: int, start: datetime = T0) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(count)]


async def bucket_rows(
    storage: Storage, server_id: str, names: list[str], start: datetime, end: datetime, step: int
) -> Buckets:
    """(avg, min, max, count) per (name, bucket start), as the repository answers a query."""
    rows = await storage.repository.buckets(
        server_id,
        await account_of(storage, server_id),
        names,
        step,
        lambda stale: plan_query(micros(start), micros(end), step, stale),
        start,
        end,
    )
    return {
        (r.name, EPOCH + timedelta(microseconds=us)): (avg, low, high, count)
        for r in rows
        for us, avg, low, high, count in zip(r.starts, r.avg, r.min, r.max, r.count, strict=True)
    }


async def account_of(storage: Storage, server_id: str) -> str:
    """The account the storage recorded for a server when its first samples were written."""
    async with storage.repository.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            f"SELECT account_id::text FROM {storage.schema}.servers_seen WHERE server_id = %s",
            (server_id,),
        )
        (account,) = await cur.fetchone()
        return str(account)


def expected_buckets(
    samples: list[tuple[datetime, dict[str, float]]], start: datetime, end: datetime, step: int
) -> Expected:
    """Values per (name, bucket start), from the posted samples alone."""
    buckets: Expected = defaultdict(list)
    for ts, metrics in samples:
        if start <= ts < end:
            epoch = int(ts.timestamp()) // step * step
            bucket = datetime.fromtimestamp(epoch, ts.tzinfo)
            for name, value in metrics.items():
                buckets[name, bucket].append(value)
    return buckets


def assert_matches(got: Buckets, expected: Expected) -> None:
    """The stored buckets are exactly the expected ones, each with its exact min, max and count."""
    assert set(got) == set(expected)
    for key, values in expected.items():
        avg, low, high, count = got[key]
        assert (low, high, count) == (min(values), max(values), len(values)), key
        assert avg == pytest.approx(sum(values) / len(values), rel=1e-12), key
