"""Prometheus metrics of a gateway replica, served on METRICS_ADDR (internal, never public).

Request counts and latencies are recorded per route template in plain dictionaries; the key
cache, the invalidation subscription and the ingest batcher keep plain counters that are read at
scrape time. The hot path pays a dictionary update, never a prometheus_client lock.

Components feed it through small interfaces, so a rewritten cache or listener keeps its metrics:
`KeyCacheStats` (the cache increments it), `invalidation_applied(at)` (the listener calls it with
the invalidation's publication time) and `BatchStats` (the ingest batcher increments it).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sized
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from scout_kit.clock import Clock
from scout_kit.metrics import MetricsEndpoint, create_registry

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# From a local publish (milliseconds) to a gateway that was cut off for a while.
INVALIDATION_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
BATCH_VALUE_BUCKETS = (1, 10, 50, 100, 500, 1000, 5000, 10_000, 50_000)
BATCH_REQUEST_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 500)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


@dataclass
class CacheStats:
    """Lookups a cache answered, counted by the cache itself."""

    hits: int = 0
    misses: int = 0
    # No lease (gateway.lease): every lookup goes to the service behind.
    bypassed: int = 0
    flushes: int = 0
    # Misses that waited for a validation of the same digest already in flight
    # (gateway.leased_cache.Validations) instead of calling.
    joined: int = 0


@dataclass
class SessionCacheStats(CacheStats):
    """The session cache's lookups."""


@dataclass
class KeyCacheStats(CacheStats):
    """The key cache's lookups, and the dead keys it refused from memory."""

    dead_key_hits: int = 0


@dataclass
class BatchStats:
    """What the ingest batcher sent to the ingest service."""

    calls: int = 0
    refused_posts: int = 0
    # Cumulative per-bucket counts (the last slot is +Inf) and sums, for two histograms.
    values: list[int] = field(default_factory=lambda: [0] * (len(BATCH_VALUE_BUCKETS) + 1))
    values_sum: int = 0
    requests: list[int] = field(default_factory=lambda: [0] * (len(BATCH_REQUEST_BUCKETS) + 1))
    requests_sum: int = 0

    def sent(self, requests: int, values: int) -> None:
        self.calls += 1
        self.values[bisect_left(BATCH_VALUE_BUCKETS, values)] += 1
        self.values_sum += values
        self.requests[bisect_left(BATCH_REQUEST_BUCKETS, requests)] += 1
        self.requests_sum += requests


class GatewayMetrics:
    """Per-request counting in plain dictionaries, turned into Prometheus families only when
    scraped: prometheus_client's labelled metrics cost more per request than all of a cached
    key check, and this runs on every request."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self.registry = create_registry("gateway")
        self.endpoint = MetricsEndpoint(self.registry)
        # (route, method, status) -> count
        self._requests: dict[tuple[str, str, int], int] = {}
        # (route, method, status class) -> per-bucket counts (the last slot is +Inf), and sums
        self._buckets: dict[tuple[str, str, str], list[int]] = {}
        self._sums: dict[tuple[str, str, str], float] = {}
        self.key_cache = KeyCacheStats()
        self.session_cache = SessionCacheStats()
        self.batches = BatchStats()
        self.registry.register(_RequestCollector(self))
        self._lag = Histogram(
            "scout_gateway_key_invalidation_lag_seconds",
            "From a key invalidation's publication to this gateway applying it",
            registry=self.registry,
            buckets=INVALIDATION_LAG_BUCKETS,
        )

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        series = (route, method, status_class(status))
        buckets = self._buckets.get(series)
        if buckets is None:
            buckets = self._buckets[series] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._sums[series] = 0.0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[series] += seconds

    def invalidation_applied(self, published_at: datetime) -> None:
        lag = (self._clock.now() - published_at).total_seconds()
        self._lag.observe(max(lag, 0.0))

    def watch_keys(self, cache: CacheView, listener: ListenerView) -> None:
        self.registry.register(_KeyCacheCollector(cache, listener, self.key_cache))

    def watch_sessions(self, cache: Sized) -> None:
        self.registry.register(_SessionCacheCollector(cache, self.session_cache))

    def watch_batcher(self, batcher: BatcherView) -> None:
        self.registry.register(_BatcherCollector(batcher, self.batches))


class CacheView(Protocol):
    def __len__(self) -> int: ...

    @property
    def trusted(self) -> bool: ...


class ListenerView(Protocol):
    @property
    def invalidations_applied(self) -> int: ...

    @property
    def lease_renewals(self) -> int: ...


class BatcherView(Protocol):
    @property
    def pending_values(self) -> int: ...

    @property
    def calls_in_flight(self) -> int: ...


def _histogram(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    """Per-bucket counts as Prometheus' cumulative buckets."""
    cumulative, total = [], 0
    for bound, count in zip((*bounds, float("inf")), list(counts), strict=True):
        total += count
        cumulative.append(("+Inf" if bound == float("inf") else repr(bound), float(total)))
    return cumulative


class _RequestCollector(Collector):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        # Copies: the event loop may add entries while the scrape thread reads.
        requests = CounterMetricFamily(
            "scout_gateway_requests",
            "HTTPS requests answered, by route template, method and status",
            labels=["route", "method", "status"],
        )
        for (route, method, status), count in list(self._metrics._requests.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "scout_gateway_request_seconds",
            "Time to answer an HTTPS request, by route template, method and status class",
            labels=["route", "method", "status_class"],
        )
        for series, counts in list(self._metrics._buckets.items()):
            latency.add_metric(
                list(series),
                _histogram(LATENCY_BUCKETS, counts),
                sum_value=self._metrics._sums.get(series, 0.0),
            )
        yield latency


class _KeyCacheCollector(Collector):
    def __init__(self, cache: CacheView, listener: ListenerView, stats: KeyCacheStats) -> None:
        self._cache = cache
        self._listener = listener
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "scout_gateway_key_cache_entries", "API keys cached as valid", value=len(self._cache)
        )
        yield GaugeMetricFamily(
            "scout_gateway_key_cache_trusted",
            "1 while the gateway holds its cache lease (a PING on the invalidation subscription "
            "was answered less than CACHE_LEASE_SECONDS ago), so the key cache is used",
            value=1.0 if self._cache.trusted else 0.0,
        )
        lookups = CounterMetricFamily(
            "scout_gateway_key_cache_lookups",
            "API key lookups in the cache, by result (hit, miss, bypassed while untrusted, "
            "dead_key: a rotated, revoked or unknown key answered without a call)",
            labels=["result"],
        )
        stats = self._stats
        for result, count in (
            ("hit", stats.hits),
            ("miss", stats.misses),
            ("bypassed", stats.bypassed),
            ("dead_key", stats.dead_key_hits),
        ):
            lookups.add_metric([result], count)
        yield lookups
        yield CounterMetricFamily(
            "scout_gateway_key_validations_joined",
            "Key cache misses answered by a validation of the same key already in flight "
            "instead of a call of their own",
            value=stats.joined,
        )
        yield CounterMetricFamily(
            "scout_gateway_key_cache_flushes",
            "Times the key cache was emptied (subscription lost or re-established, bad message)",
            value=stats.flushes,
        )
        yield CounterMetricFamily(
            "scout_gateway_cache_lease_renewals",
            "Times a PONG on the invalidation subscription renewed the cache lease",
            value=self._listener.lease_renewals,
        )
        yield CounterMetricFamily(
            "scout_gateway_key_invalidations_applied",
            "Key invalidation messages applied since start",
            value=self._listener.invalidations_applied,
        )


class _SessionCacheCollector(Collector):
    def __init__(self, cache: Sized, stats: SessionCacheStats) -> None:
        self._cache = cache
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(
            "scout_gateway_session_cache_entries",
            "Sessions cached as valid",
            value=len(self._cache),
        )
        lookups = CounterMetricFamily(
            "scout_gateway_session_cache_lookups",
            "Session lookups in the cache, by result (hit, miss, bypassed without a lease)",
            labels=["result"],
        )
        stats = self._stats
        for result, count in (
            ("hit", stats.hits),
            ("miss", stats.misses),
            ("bypassed", stats.bypassed),
        ):
            lookups.add_metric([result], count)
        yield lookups
        yield CounterMetricFamily(
            "scout_gateway_session_validations_joined",
            "Session cache misses answered by a validation of the same session already in "
            "flight instead of a call of their own",
            value=stats.joined,
        )


class _BatcherCollector(Collector):
    def __init__(self, batcher: BatcherView, stats: BatchStats) -> None:
        self._batcher = batcher
        self._stats = stats

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        stats = self._stats
        yield GaugeMetricFamily(
            "scout_gateway_ingest_pending_values",
            "Posted values waiting for a WriteBatch call to the ingest service",
            value=self._batcher.pending_values,
        )
        yield GaugeMetricFamily(
            "scout_gateway_ingest_calls_in_flight",
            "WriteBatch calls waiting for the ingest service's commit",
            value=self._batcher.calls_in_flight,
        )
        yield CounterMetricFamily(
            "scout_gateway_ingest_refused_posts",
            "Posts refused with 503 because too many values were waiting",
            value=stats.refused_posts,
        )
        values = HistogramMetricFamily(
            "scout_gateway_ingest_batch_values", "Values per WriteBatch call"
        )
        values.add_metric([], _histogram(BATCH_VALUE_BUCKETS, stats.values), stats.values_sum)
        yield values
        requests = HistogramMetricFamily(
            "scout_gateway_ingest_batch_requests", "Posts carried per WriteBatch call"
        )
        requests.add_metric(
            [], _histogram(BATCH_REQUEST_BUCKETS, stats.requests), stats.requests_sum
        )
        yield requests


class LogBudget:
    """At most `per_second` lines in each second (a window that opens with the first line after
    the last one closed, on the monotonic clock). What is over is counted, and the next line
    admitted says how many were left out before it."""

    def __init__(self, clock: Clock, per_second: int) -> None:
        self._clock = clock
        self._per_second = per_second
        self._window_ends = -math.inf
        self._used = 0
        self._left_out = 0

    def admit(self) -> int | None:
        """None when this line is over the budget; otherwise the lines left out since the last
        one admitted."""
        now = self._clock.monotonic()
        if now >= self._window_ends:
            self._window_ends = now + 1.0
            self._used = 0
        if self._used >= self._per_second:
            self._left_out += 1
            return None
        self._used += 1
        left_out, self._left_out = self._left_out, 0
        return left_out
