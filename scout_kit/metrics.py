"""Prometheus metrics every service shares: runtime collectors, the internal endpoint, and the
health of its dependencies (PostgreSQL pool and round trip, Redis round trip).

Each process has its own `CollectorRegistry` (never the global one), served on METRICS_ADDR. The
dependency probes run one cheap round trip every few seconds, so an operator sees the latency a
request would meet, and `*_up` drops to 0 while a dependency is unreachable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from typing import Protocol
from wsgiref.simple_server import WSGIServer

import aiopg
from prometheus_client import CollectorRegistry, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 5.0
PROBE_TIMEOUT_SECONDS = 2.0
# Round trips to PostgreSQL and Redis: sub-millisecond on a LAN, seconds when in trouble.
ROUND_TRIP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


def package_version() -> str:
    try:
        return version("server-scout")
    except PackageNotFoundError:
        return "unknown"


def create_registry(component: str) -> CollectorRegistry:
    """A registry with the process (CPU, memory, file descriptors), Python platform and garbage
    collector collectors, and `scout_build_info`."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    info = Gauge(
        "scout_build_info",
        "Always 1; the labels name the component and its version",
        ["component", "version"],
        registry=registry,
    )
    info.labels(component, package_version()).set(1)
    return registry


class MetricsEndpoint:
    """The internal /metrics listener (a thread of prometheus_client's)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    def serve(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._server, self._thread = start_http_server(
            int(port), host.strip("[]"), registry=self._registry
        )

    @property
    def port(self) -> int | None:
        return None if self._server is None else int(self._server.server_port)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Pool(Protocol):
    """What aiopg's pool tells about itself."""

    @property
    def size(self) -> int: ...

    @property
    def freesize(self) -> int: ...

    @property
    def maxsize(self) -> int | None: ...


class PoolCollector(Collector):
    def __init__(self, pool: _Pool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[GaugeMetricFamily]:
        connections = GaugeMetricFamily(
            "scout_db_pool_connections",
            "PostgreSQL connections of this replica's pool, by state",
            labels=["state"],
        )
        size, idle = self._pool.size, self._pool.freesize
        connections.add_metric(["in_use"], size - idle)
        connections.add_metric(["idle"], idle)
        yield connections
        yield GaugeMetricFamily(
            "scout_db_pool_max_connections",
            "The most connections the pool opens (DB_POOL_SIZE)",
            value=self._pool.maxsize or 0,
        )


class DependencyProbe:
    """Times one round trip to a dependency every few seconds: `scout_<name>_up` and
    `scout_<name>_round_trip_seconds`."""

    def __init__(
        self,
        name: str,
        round_trip: Callable[[], Awaitable[object]],
        registry: CollectorRegistry,
        interval: float = PROBE_INTERVAL_SECONDS,
    ) -> None:
        self.name = name
        self._round_trip = round_trip
        self._interval = interval
        self._stopped = asyncio.Event()
        self._up = Gauge(
            f"scout_{name}_up",
            f"1 when the last {name} round trip succeeded within {PROBE_TIMEOUT_SECONDS:g}s",
            registry=registry,
        )
        self._latency = Histogram(
            f"scout_{name}_round_trip_seconds",
            f"Time of a trivial {name} round trip, measured every {interval:g}s",
            registry=registry,
            buckets=ROUND_TRIP_BUCKETS,
        )

    async def probe_once(self) -> bool:
        """One round trip; it bounds its own time (a cancelled query could leave a pooled
        connection in use for good, so nothing here cancels one)."""
        started = time.perf_counter()
        try:
            await self._round_trip()
        except Exception as exc:
            self._up.set(0)
            log.debug("%s probe failed: %r", self.name, exc)
            return False
        self._latency.observe(time.perf_counter() - started)
        self._up.set(1)
        return True

    async def run(self) -> None:
        """Probe every interval until stop(); a round trip under way is let finish."""
        while not self._stopped.is_set():
            await self.probe_once()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):  # not wait_for: see scout_kit.tasks
                    await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()


def database_round_trip(pool: aiopg.Pool) -> Callable[[], Awaitable[object]]:
    """Acquire a connection and run SELECT 1: includes any wait for a free connection. The
    query is bounded by aiopg's own timeout, which cancels it on the server and keeps the
    connection usable."""

    async def round_trip() -> None:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):  # the wait for a connection
            conn = await pool.acquire()
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1", timeout=PROBE_TIMEOUT_SECONDS)
        finally:
            await pool.release(conn)

    return round_trip
