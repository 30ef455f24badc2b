"""The measurements the issues ask for, run against real processes in one bench run."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import platform
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from bench.agent_footprint import footprint_row
from bench.agent_footprint import measure as measure_agent
from bench.environment import BenchEnvironment
from bench.load import LoadResult, Prober, RequestSpec, percentile, python_load, wrk_load
from bench.options import Options
from bench.processes import Fleet, ServerProcess, free_port
from bench.report import Goal, Report, Row
from bench.storage import PostgresBackends, backend_pids
from bench.storage_scenarios import ingest_scaling, storage_footprint
from scout.keys.v1 import keys_pb2
from scout_admin.commands import Admin, open_admin
from scout_admin.settings import Settings as AdminSettings
from scout_kit.clock import SystemClock
from scout_kit.grpc_client import call_metadata, create_channel
from scout_kit.heap import freeze_startup_heap
from scout_kit.identity import TokenIssuer, service_identity
from scout_kit.invalidation import DEFAULT_LEASE_SECONDS

log = logging.getLogger("bench")

PASSWORD = "bench password that is long enough 42"  # noqa: S105 - a throwaway bench user
SESSION_COOKIE = "__Host-scout_session"
WHOAMI = "/api/v1/whoami"
METRIC_NAMES = [
    "cpu.percent",
    "cpu.user",
    "cpu.system",
    "cpu.iowait",
    "load.1",
    "load.5",
    "load.15",
    "mem.used_bytes",
    "mem.free_bytes",
    "mem.cached_bytes",
    "swap.used_bytes",
    "disk.root.used_bytes",
    "disk.root.free_bytes",
    "disk.io.read_bytes",
    "disk.io.write_bytes",
    "net.eth0.rx_bytes",
    "net.eth0.tx_bytes",
    "net.tcp.established",
    "proc.count",
    "uptime.s",
]
VALIDATE_KEY_METHOD = "/scout.keys.v1.KeyService/ValidateKey"
ROTATION_POLL_LIMIT = 1.0  # seconds a replica may keep accepting the old key before we give up
STOPPED_ROTATIONS = 5
# Posts in flight for row 5s: enough that the pipeline, not the wait for commits, sets the rate
# (row 5 at 16 is bounded by commit latency: 16 posts in flight / ~5 ms per post). Each post holds
# its connection until its batch is committed, so the rate is connections / latency until a
# process saturates: at 64, on a quiet 2-core machine, no process was (1.4 cores of 2 busy, the
# gateway 71%) and the rate did not move with calls in flight or linger; at 256 the gateway was
# at 83% of a core and the rate 4-17% higher, with 80-odd posts per WriteBatch call.
SATURATED_POST_CONNECTIONS = 256
BATCH_REQUESTS = "scout_gateway_ingest_batch_requests"
SESSION_VS_KEY_GOAL = 0.9
# Scenario 6a alternates this many windows of session- and key-authenticated whoami, so both see
# the same machine: two runs seconds apart on a shared machine differ by more than the paths do.
SESSION_KEY_WINDOWS = 3


@dataclass(frozen=True)
class Seed:
    email: str
    account_id: str
    server_id: str
    api_key: str
    rotating_server_id: str
    rotating_key: str


@dataclass(frozen=True)
class Session:
    cookie: str
    csrf_token: str


def metrics_body_template() -> str:
    metrics = ", ".join(f'"{name}": {value}' for value, name in enumerate(METRIC_NAMES, start=1))
    return '{"samples": [{"ts": {ts}, "metrics": {' + metrics + "}}]}"


class Bench:
    def __init__(self, options: Options, env: BenchEnvironment, fleet: Fleet, admin: Admin):
        self.options = options
        self.env = env
        self.fleet = fleet
        self.admin = admin
        self.report = Report(meta=_meta(options))
        self.hello: ServerProcess | None = None
        self.keys: ServerProcess | None = None
        self.ingest: ServerProcess | None = None
        self.auth: ServerProcess | None = None
        self.gateways: list[ServerProcess] = []
        # Gateway 1's Prometheus endpoint, for the batch sizes behind scenario 5's figures.
        self.metrics_addr = f"127.0.0.1:{free_port()}"
        self.uncached: ServerProcess | None = None
        self.seed: Seed | None = None
        self.session: Session | None = None
        self.sessions_unavailable = ""
        self.metric_names = METRIC_NAMES

    # ---- setup ---------------------------------------------------------------------------------

    async def start(self) -> None:
        wants = self.options.wants
        needs_gateway = any(wants(n) for n in (2, 3, 4, 5, 6, 7, 8, 9))
        level = self.options.service_log_level
        if needs_gateway:
            await self.admin.migrate()
            self.seed = await self._seed()
        services: dict[str, str] = {}
        grpc_processes = []
        for name, module, variable, needed in (
            ("keys", "key_service", "KEY_SERVICE_ADDR", needs_gateway),
            # Rotation (4) too: the rotate answer carries the server's status, from ingest.
            ("ingest", "ingest_service", "INGEST_SERVICE_ADDR", any(map(wants, (4, 5, 7, 8, 9)))),
            ("auth", "auth_service", "AUTH_SERVICE_ADDR", wants(4) or wants(6)),
        ):
            if needed:
                # Scenario 8 measures its whole simulated month: no raw partition of it expires.
                overrides = {"RETENTION_DAYS": str(self.options.storage_days + 3)}
                profile_to = None
                if name == "ingest" and self.options.profile_dir is not None:
                    self.options.profile_dir.mkdir(parents=True, exist_ok=True)
                    profile_to = self.options.profile_dir / "ingest.pstats"
                process = self.fleet.spawn_grpc(
                    name,
                    module,
                    self.env.service_env(name, level, **overrides),
                    profile_to=profile_to,
                )
                setattr(self, name, process)
                grpc_processes.append(process)
                services[variable] = process.address
            else:  # never called in this run: an address where nothing listens
                services[variable] = f"127.0.0.1:{free_port()}"
        hello_env = self.env.gateway_env(services, level)
        self.hello = self.fleet.spawn_https("hello", "bench.hello", hello_env)
        await asyncio.gather(*(self.fleet.wait_grpc_ready(p) for p in grpc_processes))
        if needs_gateway:
            replicas = 3 if wants(4) else 1
            for index in range(1, replicas + 1):
                profile = None
                if index == 1 and self.options.profile_dir is not None:
                    self.options.profile_dir.mkdir(parents=True, exist_ok=True)
                    profile = self.options.profile_dir / "gateway.pstats"
                extra = {"METRICS_ADDR": self.metrics_addr} if index == 1 else {}
                self.gateways.append(
                    self.fleet.spawn_https(
                        f"gateway-{index}",
                        "gateway",
                        self.env.gateway_env(services, level, **extra),
                        profile_to=profile,
                    )
                )
            if wants(3):
                self.uncached = self.fleet.spawn_https(
                    "gateway-uncached",
                    "gateway",
                    self.env.gateway_env(services, level, KEY_CACHE_SIZE="0"),
                )
        waits = [self.fleet.wait_https_ready(self.hello, "/")]
        waits += [
            self.fleet.wait_https_ready(gateway, "/readyz", expect='"trusted"')
            for gateway in self.gateways
        ]
        if self.uncached is not None:
            waits.append(self.fleet.wait_https_ready(self.uncached, "/readyz"))
        await asyncio.gather(*waits)

    async def _seed(self) -> Seed:
        email = f"bench-{uuid.uuid4().hex[:10]}@example.com"
        user = await self.admin.create_user(email, PASSWORD, "Bench")
        agent = await self.admin.create_server(email, "bench-agent")
        rotating = await self.admin.create_server(email, "bench-rotating")
        return Seed(
            email=email,
            account_id=user.account_id,
            server_id=agent.server.id,
            api_key=agent.api_key,
            rotating_server_id=rotating.server.id,
            rotating_key=rotating.api_key,
        )

    # ---- helpers -------------------------------------------------------------------------------

    def _watch(self, *extra: ServerProcess | None) -> list[ServerProcess]:
        return [process for process in extra if process is not None]

    async def _load(
        self,
        target: ServerProcess,
        spec: RequestSpec,
        *,
        watch: Sequence[ServerProcess],
        connections: int | None = None,
        duration: float | None = None,
    ) -> LoadResult:
        connections = connections or self.options.connections
        duration = duration or self.options.duration
        if self.options.client == "wrk":
            return await wrk_load(
                target,
                spec,
                workdir=self.env.workdir,
                connections=connections,
                duration=duration,
                warmup=self.options.warmup,
                watch=watch,
            )
        return await python_load(
            target,
            spec,
            context=self.env.client_ssl(),
            connections=connections,
            duration=duration,
            warmup=self.options.warmup,
            watch=watch,
        )

    def _row(self, key: str, label: str, result: LoadResult, goal: Goal | None = None) -> Row:
        """A throughput row, with its ratios to the baseline (row 1) of this run."""
        cpu = result.cpu_ms_per_request()
        if key == "1":
            ratio: float | None = 1.0
            cpu_ratio: float | None = 1.0
        else:
            ratio = cpu_ratio = None
            baseline = self.report.row("1")
            if baseline is not None and baseline.rps:
                ratio = result.rps / baseline.rps
            ours = sum(value for name, value in cpu.items() if name not in ("client", "machine"))
            if baseline is not None and "hello" in baseline.cpu_ms_per_request and ours > 0:
                cpu_ratio = baseline.cpu_ms_per_request["hello"] / ours
        row = Row(
            key=key,
            label=label,
            rps=result.rps,
            p50_ms=result.p50_ms,
            p99_ms=result.p99_ms,
            ratio=ratio,
            cpu_ratio=cpu_ratio,
            samples=result.requests,
            errors=result.errors,
            goal=goal,
            cpu_ms_per_request=cpu,
        )
        if result.error_kinds:
            row.notes.append(
                "errors: "
                + ", ".join(
                    f"{kind} x{count:,}" for kind, count in sorted(result.error_kinds.items())
                )
            )
        return self.report.add(row)

    @contextlib.asynccontextmanager
    async def _http(self) -> AsyncIterator[aiohttp.ClientSession]:
        connector = aiohttp.TCPConnector(ssl=self.env.client_ssl(), limit=0)
        async with aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=10),
        ) as session:
            yield session

    def _key_headers(self, key: str) -> dict[str, str]:
        return {"X-API-Key": key}

    # ---- scenarios -----------------------------------------------------------------------------

    async def baseline(self) -> None:
        assert self.hello is not None
        result = await self._load(
            self.hello, RequestSpec("GET", "/"), watch=self._watch(self.hello)
        )
        self._row("1", "bare aiohttp TLS hello (baseline)", result)

    async def key_auth(self) -> None:
        assert self.seed is not None
        gateway = self.gateways[0]
        spec = RequestSpec("GET", WHOAMI, self._key_headers(self.seed.api_key))
        result = await self._load(gateway, spec, watch=self._watch(gateway, self.keys))
        self._row("2", f"GET {WHOAMI}, X-API-Key, warm cache", result, Goal("ratio", 0.85))

    async def cache_miss(self) -> None:
        assert self.seed is not None
        assert self.uncached is not None
        assert self.keys is not None
        spec = RequestSpec("GET", WHOAMI, self._key_headers(self.seed.api_key))
        miss = await self._load(
            self.uncached, spec, watch=self._watch(self.uncached, self.keys), connections=1
        )
        row = self._row(
            "3a", "cache miss: GET whoami, KEY_CACHE_SIZE=0, 1 conn", miss, Goal("p99_ms", 5.0)
        )
        row.ratio = row.cpu_ratio = None
        hit = await self._load(
            self.gateways[0], spec, watch=self._watch(self.gateways[0]), connections=1
        )
        row_hit = self._row("3b", "  same request, warm cache, 1 conn (reference)", hit)
        row_hit.ratio = row_hit.cpu_ratio = None
        row.notes.append(
            f"a miss adds {miss.p50_ms - hit.p50_ms:.2f} ms at p50 "
            f"and {miss.p99_ms - hit.p99_ms:.2f} ms at p99 to a cached request"
        )
        latencies = await self._validate_rpc_latencies()
        self.report.add(
            Row(
                key="3c",
                label="  ValidateKey RPC alone (bench -> key service)",
                p50_ms=1000 * percentile(latencies, 0.5),
                p99_ms=1000 * percentile(latencies, 0.99),
                samples=len(latencies),
            )
        )

    async def _validate_rpc_latencies(self) -> list[float]:
        assert self.seed is not None
        assert self.keys is not None
        issuer = TokenIssuer(self.env.jwt_private_pem, SystemClock())
        metadata = call_metadata(issuer.token_for(service_identity("gateway")))
        digest = hashlib.sha256(self.seed.api_key.encode()).digest()
        request = keys_pb2.ValidateKeyRequest(key_sha256=digest)
        latencies = []
        async with create_channel(self.keys.address, self.env.client_tls()) as channel:
            validate = channel.unary_unary(
                VALIDATE_KEY_METHOD,
                request_serializer=keys_pb2.ValidateKeyRequest.SerializeToString,
                response_deserializer=keys_pb2.ValidateKeyResponse.FromString,
            )
            for index in range(self.options.latency_samples + 20):
                started = time.perf_counter()
                reply = await validate(request, metadata=metadata, timeout=5)
                elapsed = time.perf_counter() - started
                if reply.status != keys_pb2.KEY_STATUS_VALID:
                    raise RuntimeError(f"ValidateKey answered {reply.status}")
                if index >= 20:  # the first calls warm the channel and the pool
                    latencies.append(elapsed)
        return latencies

    async def rotation(self) -> None:
        assert self.seed is not None
        per_replica: list[float] = []
        slowest: list[float] = []
        rotate_calls: list[float] = []
        # The same three polls with the current key, cached everywhere: what any answer takes
        # this client on this machine, which every rejection figure includes.
        reference: list[float] = []
        accepted_after = 0
        unresolved = 0
        key = self.seed.rotating_key
        probers = [Prober(gateway.port, self.env.client_ssl()) for gateway in self.gateways]
        try:
            async with self._http() as http:
                for _ in range(self.options.rotations):
                    warm = await asyncio.gather(*(self._status(p, key) for p in probers))
                    if warm != [200] * len(self.gateways):
                        raise RuntimeError(f"the current key was not accepted everywhere: {warm}")
                    polled = time.perf_counter()
                    reference += await asyncio.gather(
                        *(self._accepted(p, key, polled) for p in probers)
                    )
                    started = time.perf_counter()
                    new_key = await self._rotate(http, self.seed.rotating_server_id)
                    answered = time.perf_counter()
                    rotate_calls.append(answered - started)
                    outcomes = await asyncio.gather(
                        *(self._until_rejected(p, key, answered) for p in probers)
                    )
                    for elapsed, accepted in outcomes:
                        accepted_after += accepted
                        if elapsed is None:
                            unresolved += 1
                        else:
                            per_replica.append(elapsed)
                    slowest.append(
                        max(e if e is not None else ROTATION_POLL_LIMIT for e, _ in outcomes)
                    )
                    key = new_key
        finally:
            for prober in probers:
                prober.close()
        replicas = len(self.gateways)
        method = "HTTP (session)" if self.session is not None else "scout-admin KeyManager"
        row = self.report.add(
            Row(
                key="4a",
                label=f"rotate -> old key rejected, each of {replicas} replicas",
                p50_ms=1000 * percentile(per_replica, 0.5),
                p99_ms=1000 * percentile(per_replica, 0.99),
                samples=len(per_replica),
                errors=accepted_after + unresolved,
                goal=Goal("p99_ms", 5.0),
            )
        )
        self.report.add(
            Row(
                key="4b",
                label=f"  until all {replicas} replicas reject (per rotation)",
                p50_ms=1000 * percentile(slowest, 0.5),
                p99_ms=1000 * percentile(slowest, 0.99),
                samples=len(slowest),
                goal=Goal("p99_ms", 5.0),
            )
        )
        row.notes.append(
            f"{self.options.rotations} rotations via {method}; the rotate call itself took "
            f"p50 {1000 * percentile(rotate_calls, 0.5):.2f} ms, "
            f"p99 {1000 * percentile(rotate_calls, 0.99):.2f} ms (it waits for every gateway's "
            f"acknowledgement); old key accepted after the rotate response: {accepted_after} "
            f"times; replicas still accepting after {ROTATION_POLL_LIMIT:g}s: {unresolved}"
        )
        if replicas > 1:
            await self._rotation_with_a_stopped_replica(key, percentile(rotate_calls, 0.99))
        self.report.add(
            Row(
                key="4d",
                label="  same polls, current cached key (reference)",
                p50_ms=1000 * percentile(reference, 0.5),
                p99_ms=1000 * percentile(reference, 0.99),
                samples=len(reference),
                notes=[
                    "a poll answered from the cache, as the rejections in 4a are (from memory): "
                    "the part of 4a and 4b that is this client and this machine (polls: one "
                    "kept-alive connection per replica, prebuilt request bytes, bench.load.Prober)"
                ],
            )
        )

    async def _rotation_with_a_stopped_replica(self, key: str, healthy_p99: float) -> None:
        """Rotate while one replica is stopped (SIGSTOP): each rotate waits out its lease; after
        SIGCONT the stopped replica must refuse every key rotated meanwhile. The goal: no more
        than the lease wait on top of a healthy rotate call made, like these, after the system
        sat idle for the lease's length (on this machine such a call takes longer than one of a
        back-to-back series: idle processors and cold caches, not the wait)."""
        assert self.seed is not None
        stopped = self.gateways[-1]
        latencies: list[float] = []
        after_idle: list[float] = []
        ended: list[str] = []
        stale = 0
        probers = [Prober(gateway.port, self.env.client_ssl()) for gateway in self.gateways]
        *running_probers, stopped_prober = probers
        try:
            # Every connection is open (and kept alive) before the stop: the resumed replica
            # answers on one it accepted before it was stopped.
            for prober in probers:
                if await self._status(prober, key) != 200:
                    raise RuntimeError("a replica does not accept the current key")
            async with self._http() as http:
                for _ in range(STOPPED_ROTATIONS):
                    await asyncio.sleep(DEFAULT_LEASE_SECONDS)
                    started = time.perf_counter()
                    key = await self._rotate(http, self.seed.rotating_server_id)
                    after_idle.append(time.perf_counter() - started)
                    for prober in probers:
                        if await self._status(prober, key) != 200:
                            raise RuntimeError("a replica does not accept the current key")
                stopped.popen.send_signal(signal.SIGSTOP)
                try:
                    for _ in range(STOPPED_ROTATIONS):
                        started = time.perf_counter()
                        new_key = await self._rotate(http, self.seed.rotating_server_id)
                        latencies.append(time.perf_counter() - started)
                        ended.append(key)
                        statuses = [await self._status(p, key) for p in running_probers]
                        stale += sum(1 for status in statuses if status != 401)
                        key = new_key
                finally:
                    stopped.popen.send_signal(signal.SIGCONT)
            for old in ended:
                stale += await self._status(stopped_prober, old) != 401
            if await self._status(stopped_prober, key) != 200:
                raise RuntimeError("the resumed replica does not accept the current key")
        finally:
            for prober in probers:
                prober.close()
        idle_p50, idle_p99 = percentile(after_idle, 0.5), percentile(after_idle, 0.99)
        self.report.add(
            Row(
                key="4c",
                label=f"  rotate call with 1 of {len(self.gateways)} replicas stopped",
                p50_ms=1000 * percentile(latencies, 0.5),
                p99_ms=1000 * percentile(latencies, 0.99),
                samples=len(latencies),
                errors=stale,
                goal=Goal("p99_ms", 1000 * (DEFAULT_LEASE_SECONDS + idle_p99)),
                notes=[
                    "it waits out the stopped replica's cache lease (CACHE_LEASE_SECONDS), on top "
                    "of a healthy rotate call made, as these are, after "
                    f"{DEFAULT_LEASE_SECONDS:g} s idle: p50 {1000 * idle_p50:.1f} ms, "
                    f"p99 {1000 * idle_p99:.1f} ms ({STOPPED_ROTATIONS} calls; back to back "
                    f"p99 {1000 * healthy_p99:.1f} ms); old keys accepted anywhere after the "
                    f"rotate answered: {stale}"
                ],
            )
        )

    async def _status(self, prober: Prober, key: str) -> int:
        status, _ = await prober.get(WHOAMI, self._key_headers(key))
        return status

    async def _accepted(self, prober: Prober, key: str, since: float) -> float:
        """Seconds from `since` until the replica answered a request with `key`, which it must
        accept."""
        status, answered = await prober.get(WHOAMI, self._key_headers(key))
        if status != 200:
            raise RuntimeError(f"a replica answered {status} to the current key")
        return answered - since

    async def _until_rejected(
        self, prober: Prober, key: str, since: float
    ) -> tuple[float | None, int]:
        """Poll with the old key until the replica answers 401: (seconds since `since`, how many
        times it still accepted the key). None when it never rejected within the limit."""
        accepted = 0
        while True:
            status, answered = await prober.get(WHOAMI, self._key_headers(key))
            elapsed = answered - since
            if status == 401:
                return elapsed, accepted
            accepted += 1
            if elapsed > ROTATION_POLL_LIMIT:
                return None, accepted

    async def _rotate(self, http: aiohttp.ClientSession, server_id: str) -> str:
        assert self.seed is not None
        if self.session is None:
            rotated = await self.admin.keys.rotate_key(
                self.seed.account_id, server_id, actor="bench"
            )
            return rotated.api_key
        async with http.post(
            f"{self.gateways[0].url}/api/v1/servers/{server_id}/api-key/rotate",
            headers={
                "Cookie": f"{SESSION_COOKIE}={self.session.cookie}",
                "X-CSRF-Token": self.session.csrf_token,
            },
            json={},
        ) as response:
            body = await response.json(content_type=None)
            if response.status != 200:
                raise RuntimeError(f"rotate answered {response.status}: {body}")
            api_key: str = body["api_key"]
            return api_key

    async def _batch_calls(self) -> tuple[int, int] | None:
        """(WriteBatch calls, posts they carried) so far by gateway 1, from its metrics."""
        found: dict[str, float] = {}
        try:
            async with (
                aiohttp.ClientSession() as http,
                http.get(f"http://{self.metrics_addr}/metrics") as response,
            ):
                text = await response.text()
        except aiohttp.ClientError:
            return None
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name in (BATCH_REQUESTS + "_count", BATCH_REQUESTS + "_sum"):
                found[name] = float(value)
        if len(found) != 2:
            return None
        return int(found[BATCH_REQUESTS + "_count"]), int(found[BATCH_REQUESTS + "_sum"])

    async def agent_posts(self) -> None:
        """Row 5 at the run's connections; row 5s with enough in flight to keep every process
        busy. Each post waits for its commit, so at few connections the rate is bounded by
        commit latency, not by CPU: 5s is the pipeline's capacity, the goal's measure."""
        await self._agent_posts_at(
            "5", "POST /api/v1/metrics, 1 sample x 20 metrics, 202", self.options.connections
        )
        saturated = max(SATURATED_POST_CONNECTIONS, self.options.connections)
        await self._agent_posts_at("5s", f"  the same at {saturated} connections", saturated)

    async def _agent_posts_at(self, key: str, label: str, connections: int) -> None:
        assert self.seed is not None
        gateway = self.gateways[0]
        spec = RequestSpec(
            "POST",
            "/api/v1/metrics",
            {**self._key_headers(self.seed.api_key), "Content-Type": "application/json"},
            body_template=metrics_body_template(),
            expect_status=202,
        )
        postgres = PostgresBackends(await backend_pids(self.admin.pool))
        watch = [*self._watch(gateway, self.keys, self.ingest), postgres]
        calls_before = await self._batch_calls()
        committed_before = await self._committed_rows()
        result = await self._load(
            gateway,
            spec,
            watch=watch,  # type: ignore[arg-type]
            connections=connections,
        )
        calls_after = await self._batch_calls()
        row = self._row(key, label, result, Goal("ratio", 0.35))
        if calls_before is not None and calls_after is not None:
            calls, posts = (
                after - before for after, before in zip(calls_after, calls_before, strict=True)
            )
            if calls:
                row.notes.append(
                    f"{connections} connections: {posts / calls:.1f} posts per WriteBatch call "
                    f"on average ({calls:,} calls, warm-up included)"
                )
        ours = sum(
            v for k, v in result.cpu_ms_per_request().items() if k not in ("client", "machine")
        )
        committed = await self._committed_rows() - committed_before
        row.notes.append(
            f"{committed:,} samples committed in PostgreSQL in this run (warm-up included); at a "
            f"5 s interval that is {result.rps * 5:,.0f} servers at this rate, or "
            f"{5000 / ours:,.0f} servers per core of gateway+keys+ingest+PostgreSQL CPU"
            if ours
            else "no CPU figures"
        )

    async def _committed_rows(self) -> int:
        assert self.seed is not None
        async with self.admin.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute(
                "SELECT (SELECT count(*) FROM ingest.samples_raw WHERE server_id = %s)"
                " + (SELECT coalesce(sum(cardinality(ts)), 0) FROM ingest.samples_packed"
                " WHERE server_id = %s)",
                (self.seed.server_id, self.seed.server_id),
            )
            (count,) = await cur.fetchone()
            return int(count)

    async def login(self) -> Session | None:
        """Sign in through the gateway, or None (with the reason kept) if sessions do not exist
        yet in this tree."""
        assert self.seed is not None
        if self.auth is None:
            return None
        async with (
            self._http() as http,
            http.post(
                f"{self.gateways[0].url}/api/v1/auth/login",
                json={"email": self.seed.email, "password": PASSWORD},
            ) as response,
        ):
            body = await response.read()
            if response.status != 200:
                self.sessions_unavailable = f"POST /api/v1/auth/login answered {response.status}"
                return None
            morsel = response.cookies.get(SESSION_COOKIE)
            csrf = json.loads(body).get("csrf_token")
            if morsel is None or not isinstance(csrf, str):
                self.sessions_unavailable = "login answered without a session cookie or csrf_token"
                return None
            return Session(morsel.value, csrf)

    async def sessions(self) -> None:
        if self.session is None:
            reason = f" ({self.sessions_unavailable})" if self.sessions_unavailable else ""
            for key, label in (
                ("6a", "GET whoami with session cookie"),
                ("6b", "POST /api/v1/auth/login latency"),
            ):
                self.report.add(
                    Row(key=key, label=label, skipped=f"skipped: sessions not available{reason}")
                )
            return
        assert self.seed is not None
        gateway = self.gateways[0]
        session_spec = RequestSpec(
            "GET", WHOAMI, {"Cookie": f"{SESSION_COOKIE}={self.session.cookie}"}
        )
        key_spec = RequestSpec("GET", WHOAMI, self._key_headers(self.seed.api_key))
        watch = self._watch(gateway, self.auth, self.keys)
        window = max(1.0, self.options.duration / SESSION_KEY_WINDOWS)
        session_windows: list[LoadResult] = []
        key_windows: list[LoadResult] = []
        for _ in range(SESSION_KEY_WINDOWS):
            key_windows.append(await self._load(gateway, key_spec, watch=watch, duration=window))
            session_windows.append(
                await self._load(gateway, session_spec, watch=watch, duration=window)
            )
        result = LoadResult.combined(session_windows)
        by_key = LoadResult.combined(key_windows)
        row = self._row("6a", "GET whoami with session cookie", result)
        # The goal is relative to key authentication measured in the windows between these (both
        # cached), not to scenario 2, which ran minutes earlier on a differently loaded machine.
        relative = result.rps / by_key.rps if by_key.rps else 0.0
        met = "met" if relative >= SESSION_VS_KEY_GOAL else "NOT MET"
        per_window = ", ".join(
            f"{by_session.rps / by_key_window.rps:.2f}"
            for by_session, by_key_window in zip(session_windows, key_windows, strict=True)
            if by_key_window.rps
        )
        gateway_cpu = {
            name: measured.cpu_ms_per_request().get(gateway.name)
            for name, measured in (("session", result), ("key", by_key))
        }
        row.notes.append(
            f"{relative:.2f} of the key-authenticated whoami ({by_key.rps:,.0f} req/s) in "
            f"{SESSION_KEY_WINDOWS} alternating windows of {window:.0f} s each (per window: "
            f"{per_window}); goal >= {SESSION_VS_KEY_GOAL}: {met}"
        )
        if gateway_cpu["session"] and gateway_cpu["key"]:
            row.notes.append(
                f"{gateway.name} CPU ms per request: session {gateway_cpu['session']:.3f}, "
                f"key {gateway_cpu['key']:.3f}"
            )
        latencies = []
        async with self._http() as http:
            for _ in range(self.options.logins):
                started = time.perf_counter()
                async with http.post(
                    f"{gateway.url}/api/v1/auth/login",
                    json={"email": self.seed.email, "password": PASSWORD},
                ) as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"login answered {response.status}")
                latencies.append(time.perf_counter() - started)
        self.report.add(
            Row(
                key="6b",
                label="POST /api/v1/auth/login latency (sequential)",
                p50_ms=1000 * percentile(latencies, 0.5),
                p99_ms=1000 * percentile(latencies, 0.99),
                samples=len(latencies),
            )
        )

    async def agent_footprint(self) -> None:
        """The agent at a 1 s interval against the real gateway, reported as RSS and CPU."""
        assert self.seed is not None
        duration = 5.0 if self.options.quick else 20.0
        result = await asyncio.to_thread(
            measure_agent,
            self.gateways[0].url,
            self.seed.api_key,
            str(self.env.ca_file),
            self.env.workdir / "agent",
            duration=duration,
        )
        self.report.add(footprint_row(result))

    async def run(self) -> Report:
        await self.start()
        await self.baseline()
        if self.options.wants(4) or self.options.wants(6):
            self.session = await self.login()
        steps: list[tuple[int, str, Callable[[], Awaitable[None]]]] = [
            (2, "key auth, warm cache", self.key_auth),
            (3, "cache-miss validation", self.cache_miss),
            (4, "rotation -> rejection", self.rotation),
            (5, "agent posts", self.agent_posts),
            (6, "sessions", self.sessions),
            (7, "scout-agent footprint", self.agent_footprint),
            (8, "storage month and chart", lambda: storage_footprint(self)),
            (9, "ingest cost as servers grow", lambda: ingest_scaling(self)),
        ]
        for number, label, step in steps:
            if not self.options.wants(number):
                continue
            try:
                await step()
            except Exception as exc:
                # One broken path (the tree is being worked on) must not hide the others' figures.
                log.exception("scenario %d failed", number)
                self.report.failed.append(number)
                self.report.add(Row(key=str(number), label=label, skipped=f"FAILED: {exc!r}"[:200]))
        return self.report


def _meta(options: Options) -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "client": options.client,
        "connections": options.connections,
        "duration_s": options.duration,
        "warmup_s": options.warmup,
        "quick": options.quick,
        "loadavg_at_start": [round(load1, 2), round(load5, 2)],
        "scenarios": sorted(options.scenarios),
    }


async def run_bench(options: Options, env: BenchEnvironment) -> Report:
    fleet = Fleet(env.workdir, env.client_ssl(), env.client_tls())
    settings = AdminSettings.from_env(
        {
            "DATABASE_URL": env.database_url,
            "REDIS_URL": env.redis_url,
            "REDIS_PREFIX": env.redis_prefix,
        }
    )
    async with open_admin(settings) as admin:
        # The client's own full collections would otherwise show in the latencies it measures.
        freeze_startup_heap()
        try:
            return await Bench(options, env, fleet, admin).run()
        finally:
            await fleet.stop_all()


def print_profile(path: Path, limit: int = 25, *, title: str = "Gateway") -> None:
    import pstats

    if not path.exists():
        print(f"(no profile written at {path})")
        return
    print(f"\n{title} profile ({path}), top {limit} by own time:")
    pstats.Stats(str(path)).strip_dirs().sort_stats("tottime").print_stats(limit)
