"""Prometheus metrics of a gateway replica, served on METRICS_ADDR (internal, never public).

Request counts and latencies are recorded per route template; the key cache and the
invalidation subscription are read at scrape time, so the hot path pays only for the former.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.invalidation import InvalidationListener
from gateway.keycache import KeyCache


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "scout_gateway_requests",
            "HTTPS requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "scout_gateway_request_seconds",
            "Time to answer an HTTPS request, by route template",
            ["route"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self._server: Any = None

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

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
