"""Scenarios 8 and 9: the storage footprint and chart query of a simulated month, and ingest cost
per post as the number of servers grows (WriteBatch straight to the ingest service)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import aiopg

from bench.load import percentile
from bench.processes import ServerProcess
from bench.report import Goal, Row
from bench.storage import (
    Footprint,
    PostgresBackends,
    backend_pids,
    chart_window,
    footprint,
    generate_month,
)
from ingest_service.maintenance import partitioned_tables
from ingest_service.partitions import Partitions
from ingest_service.repository import SCHEMA
from ingest_service.rollup import RollupJob
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_kit.clock import SystemClock
from scout_kit.grpc_client import call_metadata, create_channel
from scout_kit.identity import TokenIssuer, service_identity
from scout_kit.sample_rules import DEFAULT_LATE_SAMPLE_HOURS

CHART_NAMES = ["cpu.percent", "mem.used_bytes", "load.1", "net.eth0.rx_bytes"]
BYTES_GOAL = 16.0
SCALE_STEPS = (100, 1_000, 10_000)
ENTRIES_PER_CALL = 64
CALLS_IN_FLIGHT = 4
ROUNDS_PER_MINUTE = 12
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


async def storage_footprint(bench: Any) -> None:
    """Scenario 8: a month for `storage_servers` servers (the seed server among them)."""
    options = bench.options
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    started = time.perf_counter()
    # Statements of a whole simulated day take longer than the admin pool's 10 s timeout.
    async with aiopg.create_pool(bench.env.database_url, maxsize=2, timeout=3600) as pool:
        raw_values, sizes = await _month(bench, pool, end)
    generated = time.perf_counter() - started
    per_value = sizes.per_value()
    row = bench.report.add(
        Row(
            key="8a",
            label=f"bytes per raw value, whole schema: {per_value:.2f}",
            samples=raw_values,
            notes=[
                f"{options.storage_servers} servers x {options.storage_days} days at "
                f"{options.storage_interval}s, {len(bench.metric_names)} metrics: "
                f"{raw_values:,} raw values, {sizes.total / 2**20:,.1f} MiB (generated in "
                f"{generated:.0f}s); goal "
                f"<= {BYTES_GOAL:g} bytes: {'met' if per_value <= BYTES_GOAL else 'NOT MET'}",
                "by part (bytes per raw value): "
                + ", ".join(f"{p} {sizes.per_value(p):.2f}" for p in sorted(sizes.parts)),
            ],
        )
    )
    raw_part = sum(
        v for k, v in sizes.parts.items() if k.startswith(("samples_raw", "samples_packed"))
    )
    days = options.storage_days
    kept = sizes.total - raw_part + raw_part * min(7, days) / days
    row.notes.append(
        f"with the default 7-day raw retention the same month keeps {kept / raw_values:.2f} bytes "
        "per raw value written"
    )
    await _chart_queries(bench, end)


async def _month(bench: Any, pool: aiopg.Pool, end: datetime) -> tuple[int, Footprint]:
    options, seed = bench.options, bench.seed
    _, raw_values = await generate_month(
        pool,
        bench.metric_names,
        servers=options.storage_servers,
        days=options.storage_days,
        interval_seconds=options.storage_interval,
        end=end,
        first_server=seed.server_id,
        account_id=seed.account_id,
    )
    return raw_values, await footprint(pool, raw_values)


async def _chart_queries(bench: Any, end: datetime) -> None:
    start, to = chart_window(end)
    gateway: ServerProcess = bench.gateways[0]
    url = f"{gateway.url}/api/v1/servers/{bench.seed.server_id}/metrics"
    headers = {"X-API-Key": bench.seed.api_key}
    async with bench._http() as http:
        for key, step, goal in (("8b", 3600, Goal("p99_ms", 50.0)), ("8c", 5400, None)):
            params = {
                "names": ",".join(CHART_NAMES),
                "from": start.isoformat(),
                "to": to.isoformat(),
                "step": str(step),
            }
            latencies, points = await _timed_gets(http, url, headers, params, bench.options)
            bench.report.add(
                Row(
                    key=key,
                    label=f"30-day chart, {len(CHART_NAMES)} series x {points // len(CHART_NAMES)}"
                    f" points (step {step}s)",
                    p50_ms=1000 * percentile(latencies, 0.5),
                    p99_ms=1000 * percentile(latencies, 0.99),
                    samples=len(latencies),
                    goal=goal,
                )
            )


async def _timed_gets(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    params: dict[str, str],
    options: Any,
) -> tuple[list[float], int]:
    latencies: list[float] = []
    points = 0
    for index in range(options.latency_samples // 5 + 10):
        started = time.perf_counter()
        async with http.get(url, headers=headers, params=params) as response:
            body = await response.json()
            if response.status != 200:
                raise RuntimeError(f"chart query answered {response.status}: {body}")
        if index >= 10:
            latencies.append(time.perf_counter() - started)
        points = sum(len(s["points"]) for s in body["series"])
    return latencies, points


async def ingest_scaling(bench: Any) -> None:
    """Scenario 9: posts of 20 metrics from N servers, WriteBatch calls as the gateway makes
    them under load; CPU per post of the ingest service and PostgreSQL in steady state.

    Steady state is what a fleet posting in real time costs: each server's minute is rolled up
    once, after it has closed. The bench's samples are a day old (it posts far faster than 5 s
    apart at 100 servers), so to the service's rollup job every minute would be due at once and
    be recomputed while still filling, about once a round: at 10,000 servers, whose rounds take
    seconds, that was one recomputed minute per post, twelve times steady state, and whether a
    pass fell into the window decided the figure. So the bench holds the rollup lock for the
    scenario (the service's passes skip, as a replica does while another rolls up), posts whole
    minutes of every server, and then runs the real rollup job once as it would run at the end
    of the window's sample time (its minutes and closed hours due, the open hour not): its
    PostgreSQL CPU per post is the `rollup` figure."""
    issuer = TokenIssuer(bench.env.jwt_private_pem, SystemClock())
    gateway = service_identity("gateway")

    # A token per call, as the gateway's are (the issuer renews it at half its 60 s life): at
    # 10,000 servers on a slow machine a step outlives one token.
    def metadata() -> Any:
        return call_metadata(issuer.token_for(gateway))

    names = bench.metric_names
    # As the gateway calls it: mutual TLS with a client certificate of the internal CA.
    async with (
        create_channel(bench.ingest.address, bench.env.client_tls()) as channel,
        aiopg.create_pool(bench.env.database_url, minsize=1, maxsize=1, timeout=600) as pool,
    ):
        rollup, rollup_backend = await _held_rollup(pool)
        stub = ingest_pb2_grpc.IngestServiceStub(channel)
        for servers in SCALE_STEPS:
            ids = [(str(uuid.uuid4()), str(uuid.uuid4())) for _ in range(servers)]
            # A day back, minute-aligned: room for 17,280 rounds 5 s apart before samples would
            # run into the accepted future (5 minutes); a fast run makes thousands of rounds.
            base = (int(time.time()) - 86_400) // 60 * 60 * 1_000_000
            # Warm-up: every server once (its metric set is created and cached), in a minute of
            # its own, rolled up before the window with whatever earlier scenarios left.
            await _drive(stub, metadata, ids, names, base, rounds=1)
            await rollup.run_once(datetime.now(UTC))
            pids = [p for p in await backend_pids(bench.admin.pool) if p not in rollup_backend.pids]
            watched = [bench.ingest, PostgresBackends(pids)]
            before = {w.name: w.cpu_seconds() or 0.0 for w in watched}
            start = base + 60_000_000
            started = time.perf_counter()
            posts = await _drive(stub, metadata, ids, names, start, seconds=bench.options.duration)
            elapsed = time.perf_counter() - started
            cpu = {w.name: (w.cpu_seconds() or 0.0) - before[w.name] for w in watched}
            # The job as it runs in a fleet posting in real time, at the end of the window's
            # sample time: its closed minutes and hours are due, the hour still open is not.
            clock = _EPOCH + timedelta(microseconds=start + posts // servers * 5_000_000)
            rolled_from = rollup_backend.cpu_seconds() or 0.0
            buckets = await rollup.run_once(clock + timedelta(seconds=1))
            cpu["rollup"] = (rollup_backend.cpu_seconds() or 0.0) - rolled_from
            bench.report.add(
                Row(
                    key=f"9{'abc'[SCALE_STEPS.index(servers)]}",
                    label=f"WriteBatch to ingest, {servers:,} servers, 20 metrics/post",
                    rps=posts / elapsed,
                    samples=posts,
                    notes=[
                        f"{servers:,} servers: CPU us per post: "
                        + ", ".join(f"{k} {1e6 * v / posts:.0f}" for k, v in cpu.items())
                        + f" ({posts // servers} posts per server; rollup: the real job over "
                        f"{buckets[1]:,} minutes and {buckets[2]:,} hours after the window)"
                    ],
                    cpu_ms_per_request={k: 1000 * v / posts for k, v in cpu.items()},
                )
            )


async def _held_rollup(pool: aiopg.Pool) -> tuple[RollupJob, PostgresBackends]:
    """The real rollup job on the pool's one session, which holds the rollup lock until the
    pool closes (a pass on it takes the lock again, the service's passes do not get it); and
    that session's backend, whose CPU is the rollup's."""
    late = timedelta(hours=DEFAULT_LATE_SAMPLE_HOURS)
    day = timedelta(days=1)
    partitions = Partitions(
        pool, SCHEMA, partitioned_tables(day, day, day, late), statement_timeout=600.0
    )
    await partitions.existing()
    rollup = RollupJob(partitions, SCHEMA)
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("SELECT pg_advisory_lock(%s), pg_backend_pid()", (rollup.lock_id,))
        _, pid = await cur.fetchone()
    return rollup, PostgresBackends([pid])


async def _drive(
    stub: ingest_pb2_grpc.IngestServiceStub,
    metadata: Callable[[], Any],
    ids: list[tuple[str, str]],
    names: list[str],
    base: int,
    *,
    rounds: int | None = None,
    seconds: float | None = None,
) -> int:
    """Posts round after round (each server once per round, 5 s apart in sample time): `rounds`
    of them, or for at least `seconds` and then on to the end of a minute, so that every
    server has posted whole minutes (from a minute-aligned `base`)."""
    deadline = time.perf_counter() + (seconds or 0.0)
    queue: asyncio.Queue[list[ingest_pb2.SampleColumns] | None] = asyncio.Queue(CALLS_IN_FLIGHT * 2)
    posts = 0

    def more(round_: int) -> bool:
        if rounds is not None:
            return round_ < rounds
        return round_ % ROUNDS_PER_MINUTE != 0 or time.perf_counter() < deadline

    async def producer() -> None:
        round_ = 0
        while more(round_):
            stamp = base + round_ * 5_000_000
            for first in range(0, len(ids), ENTRIES_PER_CALL):
                entries = [
                    ingest_pb2.SampleColumns(
                        server_id=server_id,
                        account_id=account_id,
                        sample_ts_micros=[stamp],
                        sample_sizes=[len(names)],
                        names=names,
                        values=[float(i + round_) for i in range(len(names))],
                    )
                    for server_id, account_id in ids[first : first + ENTRIES_PER_CALL]
                ]
                await queue.put(entries)
            round_ += 1
        for _ in range(CALLS_IN_FLIGHT):
            await queue.put(None)

    async def caller() -> None:
        nonlocal posts
        while (entries := await queue.get()) is not None:
            answer = await stub.WriteBatch(
                ingest_pb2.WriteBatchRequest(entries=entries), metadata=metadata(), timeout=30
            )
            if any(r.error for r in answer.results):
                raise RuntimeError(f"WriteBatch refused: {answer.results[0].error}")
            posts += len(entries)

    await asyncio.gather(producer(), *(caller() for _ in range(CALLS_IN_FLIGHT)))
    return posts
