"""Prometheus metrics of a gateway replica, served on METRICS_ADDR (internal, never public).

Request counts and latencies are recorded per route template; the key cache and the
invalidation subscription are read at scrape time, so the hot path pays only for the former.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from gateway.invalidation import InvalidationListener
from gateway.keycache import KeyCache

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class GatewayMetrics:
    """Per-request counting in plain dictionaries, turned into Prometheus families only when
    scraped: prometheus_client's labelled metrics cost more per request than all of a cached
    key check, and this runs on every request."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # (route, method, status) -> count
        self._requests: dict[tuple[str, str, int], int] = {}
        # route -> per-bucket counts (the last slot is +Inf), and the sum of seconds
        self._buckets: dict[str, list[int]] = {}
        self._sums: dict[str, float] = {}
        self.registry.register(_RequestCollector(self))
        self._server: Any = None

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        self._requests[key] = self._requests.get(key, 0) + 1
        buckets = self._buckets.get(route)
        if buckets is None:
            buckets = self._buckets[route] = [0] * (len(LATENCY_BUCKETS) + 1)
            self._sums[route] = 0.0
        buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self._sums[route] += seconds

    def watch_keys(self, cache: KeyCache, listener: InvalidationListener) -> None:
        self.registry.register(_KeyCacheCollector(cache, listener))

    def serve(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self._server, _ = start_http_server(int(port), host, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


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
            "Time to answer an HTTPS request, by route template",
            labels=["route"],
        )
        for route, counts in list(self._metrics._buckets.items()):
            cumulative, total = [], 0
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), list(counts), strict=True):
                total += count
                cumulative.append((_bound(bound), total))
            latency.add_metric([route], cumulative, sum_value=self._metrics._sums.get(route, 0.0))
        yield latency


def _bound(value: float) -> str:
    return "+Inf" if value == float("inf") else repr(value)


class _KeyCacheCollector(Collector):
    def __init__(self, cache: KeyCache, listener: InvalidationListener) -> None:
        self._cache = cache
        self._listener = listener

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "scout_gateway_key_cache_entries", "API keys cached as valid", value=len(self._cache)
        )
        yield GaugeMetricFamily(
            "scout_gateway_key_cache_trusted",
            "1 while the invalidation subscription is live and the key cache is used",
            value=1.0 if self._cache.trusted else 0.0,
        )
        yield GaugeMetricFamily(
            "scout_gateway_key_invalidations_applied",
            "Key invalidation messages applied since start",
            value=self._listener.invalidations_applied,
        )
