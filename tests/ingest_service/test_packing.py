"""Packing closed raw days (ingest_service.compaction) against real PostgreSQL, each test in a
scratch schema: every answer stays the same, a failed pack leaves the day raw, packing waits for
rollups and the copier and runs once across replicas, retention drops packed days, and the
late-sample window that makes packing safe (settings, WriteBatch, the gateway's 422)."""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from gateway import samples as gateway_samples
from ingest_service import compaction as compaction_module
from ingest_service.compaction import Compaction
from ingest_service.samples import accepted_window, micros
from ingest_service.server import build_maintenance
from ingest_service.settings import Settings
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_admin.commands import Admin
from scout_kit.grpc_client import call_metadata
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer
from scout_kit.sample_rules import DEFAULT_LATE_SAMPLE_HOURS, MAX_LATE_SAMPLE_HOURS
from scout_kit.settings import SettingsError
from tests.gateway.metrics_support import body, new_server, post, stack_clock, stored
from tests.ingest_service.support import (
    T0,
    Storage,
    account_of,
    assert_matches,
    bucket_rows,
    expected_buckets,
    partitions_of,
    query,
    sample_write,
    scratch_storage,
)
from tests.stack import Environment, client_session, running_stack

OPENAPI = Path(__file__).parents[2] / "gateway" / "openapi.yaml"
Samples = list[tuple[datetime, dict[str, float]]]
DAY = f"samples_raw_p{T0:%Y%m%d}"
# Past the late-sample window (48 hours by default) plus the hour's margin after T0's day.
CLOSED = T0 + timedelta(days=3)


def _day_of_samples(rng: random.Random) -> Samples:
    """From T0 (noon) to midnight every 13 s, off any boundary; a metric joins at 15:00 (a
    second metric set within an hour) and one value is constant (long runs for compression)."""
    samples: Samples = []
    for i in range(12 * 3600 // 13):
        ts = T0 + timedelta(seconds=2.5 + 13 * i)
        metrics = {"cpu": round(rng.uniform(0, 100), 2), "mem": float(rng.randrange(10**9))}
        metrics["const"] = 42.0
        if ts >= T0 + timedelta(hours=3, minutes=7):
            metrics["disk"] = rng.uniform(-5, 5)
        samples.append((ts, metrics))
    return samples


async def _store_day(storage: Storage, server: str, account: str, samples: Samples) -> None:
    for first in range(0, len(samples), 500):
        chunk = samples[first : first + 500]
        await storage.repository.write([sample_write(server, chunk, account)], T0)


async def _answers(storage: Storage, server: str, samples: Samples) -> dict[object, object]:
    """Every query shape: raw steps, minute and hour tiers with raw edges, latest, names."""
    names = ["cpu", "mem", "const", "disk"]
    got: dict[object, object] = {}
    for start, end, step in (
        (T0 + timedelta(seconds=31), T0 + timedelta(hours=2, seconds=17), 13),
        (T0 - timedelta(hours=1), T0 + timedelta(hours=13), 60),
        (T0 + timedelta(minutes=17, seconds=3), T0 + timedelta(hours=11, seconds=9), 300),
        (T0 + timedelta(seconds=5), T0 + timedelta(hours=12), 3600),
    ):
        buckets = await bucket_rows(storage, server, names, start, end, step)
        assert_matches(buckets, expected_buckets(samples, start, end, step))
        got[start, end, step] = buckets
    account = await account_of(storage, server)
    got["latest"] = await storage.repository.latest(server, account)
    got["names"] = await storage.repository.metric_names(server, account)
    return got


async def test_packing_a_day_keeps_every_answer(
    admin: Admin, env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One statement per server: the day is packed in several statements of one transaction.
    monkeypatch.setattr(compaction_module, "PACK_SERVERS_PER_STATEMENT", 1)
    rng = random.Random(7)
    async with scratch_storage(admin, env) as storage:
        servers = [str(uuid.uuid4()) for _ in range(2)]
        days = {server: _day_of_samples(rng) for server in servers}
        for server, samples in days.items():
            await _store_day(storage, server, str(uuid.uuid4()), samples)
        clock, maintenance = storage.clock, storage.maintenance
        clock.advance((CLOSED - T0).total_seconds())
        await maintenance.rollup.run_once(clock.now())
        before = {s: await _answers(storage, s, days[s]) for s in servers}
        stored_before = {s: await stored(admin, s, storage.schema) for s in servers}
        assert DAY in await maintenance.compaction.pack_once(clock.now())
        assert DAY not in await partitions_of(admin, storage.schema, "samples_raw")
        rows = await query(
            admin,
            f"SELECT count(*), sum(cardinality(ts)) FROM {storage.schema}.samples_packed",
        )
        # Twelve hours per server, the hour of 15:00 in two metric sets.
        assert rows == [(2 * 13, sum(len(s) for s in days.values()))]
        for server in servers:
            assert await _answers(storage, server, days[server]) == before[server]
            assert await stored(admin, server, storage.schema) == stored_before[server]
        # A new day is written raw as before, and read together with the packed one.
        await maintenance.partitions_once()
        late = clock.now() - timedelta(hours=1)
        extra: Samples = [(late, {"cpu": 5.0})]
        await storage.repository.write([sample_write(servers[0], extra, "")], clock.now())
        account = await account_of(storage, servers[0])
        latest = await storage.repository.latest(servers[0], account)
        assert ("cpu", 5.0, late) in latest
        assert ("disk", days[servers[0]][-1][1]["disk"], days[servers[0]][-1][0]) in latest
        # Nothing left to pack: a second pass changes nothing.
        assert await maintenance.compaction.pack_once(clock.now()) == []


async def test_a_failed_pack_leaves_the_day_raw_and_the_next_pass_packs_it(
    admin: Admin, env: Environment, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with scratch_storage(admin, env) as storage:
        server = str(uuid.uuid4())
        samples = _day_of_samples(random.Random(3))[:500]
        await _store_day(storage, server, str(uuid.uuid4()), samples)
        storage.clock.advance((CLOSED - T0).total_seconds())
        now = storage.clock.now()
        await storage.maintenance.rollup.run_once(now)
        stored_before = await stored(admin, server, storage.schema)
        # The packed rows are inserted, then the transaction fails before the drop.
        monkeypatch.setattr(compaction_module, "_PACK", compaction_module._PACK + "; SELECT 1/0")
        with pytest.raises(Exception, match="division by zero"):
            await storage.maintenance.compaction.pack_once(now)
        # A pack that would leave samples behind (here: a server without metric sets) fails.
        monkeypatch.undo()
        monkeypatch.setattr(
            compaction_module,
            "_PACK",
            compaction_module._PACK.replace("%(servers)s::uuid[]", "'{}'::uuid[]"),
        )
        with pytest.raises(RuntimeError, match="moved 0 of 500 samples"):
            await storage.maintenance.compaction.pack_once(now)
        assert DAY in await partitions_of(admin, storage.schema, "samples_raw")
        assert await query(admin, f"SELECT count(*) FROM {storage.schema}.samples_packed") == [(0,)]
        assert await stored(admin, server, storage.schema) == stored_before
        monkeypatch.undo()
        assert DAY in await storage.maintenance.compaction.pack_once(now)
        assert await stored(admin, server, storage.schema) == stored_before


async def test_packing_waits_for_rollups_and_the_copier_and_runs_once_across_replicas(
    admin: Admin, env: Environment
) -> None:
    async with scratch_storage(admin, env) as storage:
        server = str(uuid.uuid4())
        samples = _day_of_samples(random.Random(5))[:400]
        await _store_day(storage, server, str(uuid.uuid4()), samples)
        compaction, maintenance = storage.maintenance.compaction, storage.maintenance
        # A minute before the day's end is past the late-sample window and the hour's margin.
        day_end = T0.replace(hour=0) + timedelta(days=1)
        storage.clock.advance((day_end + timedelta(hours=49) - T0).total_seconds() - 60)
        await maintenance.rollup.run_once(storage.clock.now())
        assert DAY not in await compaction.pack_once(storage.clock.now())
        storage.clock.advance(60)
        now = storage.clock.now()
        # A late mark in the day (a minute waiting for its rollup): the day waits.
        await query(
            admin,
            f"INSERT INTO {storage.schema}.rollup_pending VALUES (%s, 1, %s) RETURNING 1",
            server,
            T0 + timedelta(minutes=30),
        )
        assert DAY not in await compaction.pack_once(now)
        await maintenance.rollup.run_once(now)
        # An unfinished copier of the old table: nothing is packed.
        await query(
            admin, f"UPDATE {storage.schema}.samples_migration SET done = false RETURNING 1"
        )
        assert await compaction.pack_once(now) == []
        await query(admin, f"UPDATE {storage.schema}.samples_migration SET done = true RETURNING 1")
        stored_before = await stored(admin, server, storage.schema)
        other = Compaction(maintenance.partitions, 60.0, timedelta(hours=48))
        results = await asyncio.gather(compaction.pack_once(now), other.pack_once(now))
        # One packs (the day and the empty raw days before it), the other skips.
        assert sorted(DAY in r for r in results) == [False, True] and [] in results
        assert await stored(admin, server, storage.schema) == stored_before
        rows = await query(
            admin, f"SELECT sum(cardinality(ts)) FROM {storage.schema}.samples_packed"
        )
        assert rows == [(len(samples),)]
        # The raw day is not made again by the partition pass, nor by a replica whose window
        # was widened since (it refuses samples of packed days).
        await maintenance.partitions_once()
        assert DAY not in await partitions_of(admin, storage.schema, "samples_raw")
        wide = Settings.from_env(env.service_env(LATE_SAMPLE_HOURS="168"))
        widened = build_maintenance(wide, storage.repository, storage.clock)
        await widened.prepare()
        await widened.cover(T0, T0)
        assert DAY not in await partitions_of(admin, storage.schema, "samples_raw")
        assert widened.partitions.packed_through("samples_raw") == day_end
        window = accepted_window(now, timedelta(hours=168), timedelta(days=7), day_end)
        assert window.oldest == micros(day_end)


async def test_retention_drops_packed_days(admin: Admin, env: Environment) -> None:
    async with scratch_storage(admin, env, RETENTION_DAYS="4") as storage:
        server = str(uuid.uuid4())
        await _store_day(storage, server, str(uuid.uuid4()), [(T0, {"a": 1.0})])
        maintenance = storage.maintenance
        storage.clock.advance((CLOSED - T0).total_seconds())
        await maintenance.rollup.run_once(storage.clock.now())
        assert await maintenance.compaction.run_once(storage.clock.now()) is not None
        packed_day = f"samples_packed_p{T0:%Y%m%d}"
        assert packed_day in await partitions_of(admin, storage.schema, "samples_packed")
        storage.clock.advance(2 * 86400)
        assert packed_day in await maintenance.partitions_once()
        assert packed_day not in await partitions_of(admin, storage.schema, "samples_packed")
        assert await stored(admin, server, storage.schema) == []


def test_the_late_sample_window_is_validated_and_documented(env: Environment) -> None:
    assert Settings.from_env(env.service_env()).late_sample_hours == DEFAULT_LATE_SAMPLE_HOURS
    assert Settings.from_env(env.service_env(RETENTION_DAYS="1")).late_sample_hours == 24
    assert Settings.from_env(env.service_env(LATE_SAMPLE_HOURS="1")).late_sample_hours == 1
    for bad in ("0", "169", "two"):
        with pytest.raises(SettingsError, match="LATE_SAMPLE_HOURS"):
            Settings.from_env(env.service_env(LATE_SAMPLE_HOURS=bad))
    # The gateway checks the widest window any setting allows; the document states the default.
    assert timedelta(hours=MAX_LATE_SAMPLE_HOURS) == gateway_samples.MAX_LATE
    document = " ".join(OPENAPI.read_text().split())
    assert f"late-sample window ({DEFAULT_LATE_SAMPLE_HOURS} hours by default)" in document


async def test_a_sample_older_than_the_late_window_is_refused_at_both_edges(
    env: Environment, admin: Admin
) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    now = clock.now().timestamp()
    issuer = TokenIssuer(env.jwt_private_pem, clock)
    gateway = Identity(PrincipalKind.SERVICE, "gateway", None, AuthMethod.SERVICE)
    old = ingest_pb2.SampleColumns(
        server_id=server.server_id,
        account_id=str(uuid.uuid4()),
        sample_ts_micros=[micros(clock.now() - timedelta(hours=3))],
        sample_sizes=[1],
        names=["cpu"],
        values=[1.0],
    )
    async with (
        running_stack(env, clock=clock, ingest_overrides={"LATE_SAMPLE_HOURS": "2"}) as stack,
        client_session(env) as http,
        stack.env.service_channel(stack.ingest.port) as channel,
    ):
        answer = await ingest_pb2_grpc.IngestServiceStub(channel).WriteBatch(
            ingest_pb2.WriteBatchRequest(entries=[old]),
            metadata=call_metadata(issuer.token_for(gateway)),
        )
        assert "older than the late-sample window (2 hours" in answer.results[0].error
        status, problem, headers = await post(
            http,
            stack.gateway.url,
            server.api_key,
            body((now - 3600, {"a": 1.0}), (now - 3 * 3600, {"a": 2.0})),
        )
        assert status == 422
        assert headers["Content-Type"].startswith("application/problem+json")
        assert "/samples/1" in problem["detail"]
        assert "late-sample window" in problem["detail"]
        assert await stored(admin, server.server_id) == []
        status, _, _ = await post(
            http, stack.gateway.url, server.api_key, body((now - 3600, {"a": 1.0}))
        )
        assert status == 202
    assert [v for _, _, v in await stored(admin, server.server_id)] == [1.0]


async def test_a_packed_partition_is_compacted_only_once_its_day_is_packed(
    admin: Admin, env: Environment
) -> None:
    """Until its day is packed, a packed partition may be filling in another replica's packing
    transaction: rebuilding its index then deadlocked with the transaction's last step (seen
    at 100 servers). It becomes a candidate once the day is marked packed."""
    async with scratch_storage(admin, env) as storage:
        server = str(uuid.uuid4())
        await _store_day(storage, server, str(uuid.uuid4()), _day_of_samples(random.Random(7))[:50])
        compaction, partitions = storage.maintenance.compaction, storage.maintenance.partitions
        await storage.maintenance.rollup.run_once(CLOSED)
        packed_day = f"samples_packed_p{T0:%Y%m%d}"
        assert DAY in compaction.closed(await partitions.existing(), CLOSED)
        assert packed_day not in compaction.closed(await partitions.existing(), CLOSED)
        assert DAY in await compaction.pack_once(CLOSED)
        assert packed_day in compaction.closed(await partitions.existing(), CLOSED)
