"""Helpers for the storage tests: a scratch ingest schema per test, writes, and the stored data
read back straight from the tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ingest_service.maintenance import Maintenance
from ingest_service.repository import SampleRepository
from ingest_service.samples import Write, micros
from ingest_service.server import build_maintenance
from ingest_service.settings import Settings
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.db import migrate
from tests.stack import Environment

MIGRATIONS = "ingest_service.migrations"
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
