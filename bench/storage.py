"""Storage scenarios: a simulated month written server-side into the real layout (bytes per
value, a 30-day chart), ingest cost as the number of servers grows, and PostgreSQL's own CPU.

The month is generated with generate_series into the ingest schema's own tables (raw rows and one
metric set per server), its minutes are marked as writes mark them, the real rollup job builds
both tiers, and the real compaction packs the days older than the late-sample window, so its
size is that of the real layout without the hours a real write path would take.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiopg

from ingest_service.compaction import Compaction
from ingest_service.maintenance import partitioned_tables
from ingest_service.partitions import Partitions, partition_name, partition_start
from ingest_service.repository import SCHEMA
from ingest_service.rollup import RollupJob
from scout_kit.sample_rules import DEFAULT_LATE_SAMPLE_HOURS

CLOCK_TICKS = 100

# Values shaped like an agent's: percentages with two decimals, byte counts as whole numbers,
# counters that grow, loads with two decimals; {i} is the server's index, t the epoch seconds.
_VALUE_EXPRESSIONS = [
    "round((50 + 40 * sin(t / 600.0 + {i}))::numeric, 2)",
    "round((30 + 20 * sin(t / 900.0 + {i}))::numeric, 2)",
    "round((10 + 5 * cos(t / 700.0 + {i}))::numeric, 2)",
    "round((2 + 2 * sin(t / 300.0))::numeric, 2)",
    "round((1 + sin(t / 500.0 + {i}))::numeric, 2)",
    "round((1 + sin(t / 1500.0 + {i}))::numeric, 2)",
    "round((1 + sin(t / 4500.0 + {i}))::numeric, 2)",
    "floor(4e9 + 1e9 * sin(t / 3600.0 + {i}))",
    "floor(2e9 - 1e9 * sin(t / 3600.0 + {i}))",
    "floor(1e9 + 1e8 * cos(t / 7200.0))",
    "floor(1e7 * (1 + sin(t / 86400.0)))",
    "floor(5e10 + t / 10)",
    "floor(1e11 - t / 10)",
    "floor(t * 1234.5)",
    "floor(t * 4321.5)",
    "floor(t * 98765.25)",
    "floor(t * 12345.75)",
    "floor(100 + 50 * sin(t / 60.0 + {i}))",
    "floor(250 + 20 * sin(t / 1800.0))",
    "t - 1.7e9",
]


@dataclass(frozen=True)
class Footprint:
    raw_values: int
    parts: dict[str, int]  # bytes on disk per part (heap, indexes, TOAST), after VACUUM

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def per_value(self, part: str | None = None) -> float:
        size = self.total if part is None else self.parts[part]
        return size / self.raw_values if self.raw_values else 0.0


class PostgresBackends:
    """CPU of the PostgreSQL backends serving one database (read from /proc, same machine)."""

    name = "postgres"

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def cpu_seconds(self) -> float | None:
        total = 0.0
        for pid in self.pids:
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        return total


async def backend_pids(pool: aiopg.Pool) -> list[int]:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        return [row[0] for row in await cur.fetchall()]


def metric_set_digest(names: list[str]) -> bytes:
    return hashlib.sha256("\n".join(names).encode()).digest()


async def generate_month(
    pool: aiopg.Pool,
    names: list[str],
    *,
    servers: int,
    days: int,
    interval_seconds: int,
    end: datetime,
    first_server: str,
    account_id: str,
) -> tuple[list[str], int]:
    """Write `days` of samples for `servers` new servers ending at `end`; (server ids, raw
    values written). `first_server` (an existing server of `account_id`, so the API may read it)
    is the first of them. Each day is one statement per table."""
    start = (end - timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)
    late = timedelta(hours=DEFAULT_LATE_SAMPLE_HOURS)
    tables = partitioned_tables(
        timedelta(days=days + 2), timedelta(days=days + 2), timedelta(days=days + 2), late
    )
    # The generator's month-sized rollup statements are not the service's bounded passes.
    partitions = Partitions(pool, SCHEMA, tables, statement_timeout=3600.0)
    await partitions.existing()
    for table in partitions.tables:
        await partitions.ensure(table, start, end + timedelta(days=1))
    ids = [first_server] + [str(uuid.uuid4()) for _ in range(servers - 1)]
    rollup = RollupJob(partitions, SCHEMA, batch_size=5000)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("CREATE TEMP TABLE bench_servers (i int, server_id uuid, set_id bigint)")
        await cur.execute(
            f"INSERT INTO {SCHEMA}.servers_seen (server_id, account_id, last_seen_at)"
            " VALUES (%s, %s, %s) ON CONFLICT (server_id) DO NOTHING",
            (first_server, account_id, end),
        )
        for index, server_id in enumerate(ids):
            await cur.execute(
                f"INSERT INTO {SCHEMA}.metric_sets (server_id, digest, names)"
                " VALUES (%s, %s, %s) ON CONFLICT (server_id, digest) DO NOTHING",
                (server_id, metric_set_digest(names), names),
            )
            await cur.execute(
                f"SELECT set_id FROM {SCHEMA}.metric_sets WHERE server_id = %s AND digest = %s",
                (server_id, metric_set_digest(names)),
            )
            (set_id,) = await cur.fetchone()
            await cur.execute(
                "INSERT INTO bench_servers VALUES (%s, %s, %s)", (index, server_id, set_id)
            )
        values = ", ".join(
            f"({expr.replace('{i}', 's.i')})::float8" for expr in _VALUE_EXPRESSIONS[: len(names)]
        )
        day = start
        while day < end:
            upto = min(day + timedelta(days=1), end)
            await cur.execute(
                f"INSERT INTO {SCHEMA}.samples_raw (server_id, ts, set_id, vals)"
                f" SELECT s.server_id, g.ts, s.set_id, ARRAY[{values}]"
                " FROM bench_servers s CROSS JOIN LATERAL ("
                "  SELECT ts, extract(epoch FROM ts)::float8 AS t FROM generate_series("
                "   %s::timestamptz, %s::timestamptz - interval '1 microsecond',"
                "   make_interval(secs => %s)) AS ts) g",
                (day, upto, interval_seconds),
            )
            # Statistics of the day, as autovacuum gathers them in service while a day fills
            # (a PostgreSQL may run without autovacuum: this machine's does).
            raw = partitions.tables["samples_raw"]
            raw_day = partition_name(raw, partition_start(day, raw.width))
            await cur.execute(f"ANALYZE {SCHEMA}.{raw_day}")
            # Marked as a write marks them; the rollup job builds both tiers.
            await cur.execute(
                f"INSERT INTO {SCHEMA}.rollup_pending (server_id, tier, bucket)"
                " SELECT s.server_id, 1, g FROM bench_servers s CROSS JOIN generate_series("
                "  %s::timestamptz, %s::timestamptz - interval '1 minute', interval '1 minute') g"
                " ON CONFLICT DO NOTHING",
                (day, upto),
            )
            # Rolled up day by day, as the live job keeps up, and the taken marks vacuumed as
            # autovacuum does in service, so the marks' table stays a day's worth.
            await rollup.run_once(upto + timedelta(hours=2))
            await cur.execute(f"VACUUM {SCHEMA}.rollup_pending")
            day = upto
        await cur.execute("DROP TABLE bench_servers")
    # The service packs closed raw days (older than the late-sample window) and compacts the
    # indexes of closed partitions in the background; so does this.
    await Compaction(partitions, 3600.0, late).run_once(end)
    per_server = int((end - start).total_seconds()) // interval_seconds
    return ids, per_server * servers * len(names)


async def footprint(pool: aiopg.Pool, raw_values: int) -> Footprint:
    """Bytes of the whole ingest schema after VACUUM, by part."""
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(f"VACUUM (ANALYZE) {SCHEMA}.samples_raw")
        await cur.execute(f"VACUUM (ANALYZE) {SCHEMA}.samples_packed")
        await cur.execute(f"VACUUM (ANALYZE) {SCHEMA}.rollup_1m")
        await cur.execute(f"VACUUM (ANALYZE) {SCHEMA}.rollup_1h")
        # The marks' table too: in service autovacuum keeps it to the marks still due.
        await cur.execute(f"VACUUM (ANALYZE) {SCHEMA}.rollup_pending")
        await cur.execute(
            "SELECT coalesce(p.relname, c.relname),"
            " sum(pg_relation_size(c.oid) + coalesce(pg_total_relation_size(c.reltoastrelid), 0)),"
            " sum(pg_indexes_size(c.oid))"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_inherits i ON i.inhrelid = c.oid"
            " LEFT JOIN pg_class p ON p.oid = i.inhparent"
            " WHERE n.nspname = %s AND c.relkind = 'r' GROUP BY 1",
            (SCHEMA,),
        )
        parts: dict[str, int] = {}
        for table, heap, indexes in await cur.fetchall():
            parts[f"{table} rows"] = int(heap)
            parts[f"{table} indexes"] = int(indexes)
    return Footprint(raw_values, {k: v for k, v in parts.items() if v})


def chart_window(end: datetime, days: int = 30) -> tuple[datetime, datetime]:
    to = end.replace(minute=0, second=0, microsecond=0).astimezone(UTC)
    return to - timedelta(days=days), to
