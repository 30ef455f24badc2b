"""The ingest service's own metrics: group-commit queue depth, batch sizes and commit times."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ingest_service.committer import GroupCommitter

# Values (one metric of one sample) per transaction, from a single post to INGEST_MAX_BATCH_VALUES.
VALUE_BUCKETS = (1, 10, 50, 100, 500, 1000, 5000, 10_000, 25_000, 50_000, 100_000, 500_000)
REQUEST_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
COMMIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CommitterMetrics:
    """A CommitObserver recording every group transaction."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._transactions = Counter(
            "scout_ingest_transactions",
            "Group-commit transactions, by outcome (committed or failed)",
            ["outcome"],
            registry=registry,
        )
        self._batch_values = Histogram(
            "scout_ingest_batch_values",
            "Values stored per group-commit transaction",
            registry=registry,
            buckets=VALUE_BUCKETS,
        )
        self._batch_requests = Histogram(
            "scout_ingest_batch_requests",
            "WriteBatch entries (gateway posts) per group-commit transaction",
            registry=registry,
            buckets=REQUEST_BUCKETS,
        )
        self._commit_seconds = Histogram(
            "scout_ingest_commit_seconds",
            "Time to store and commit one group transaction",
            registry=registry,
            buckets=COMMIT_BUCKETS,
        )
        self._refused = Counter(
            "scout_ingest_refused_values",
            "Values refused because the queue was full (answered RESOURCE_EXHAUSTED, HTTP 503)",
            registry=registry,
        )

    def committed(self, requests: int, values: int, seconds: float) -> None:
        self._transactions.labels("committed").inc()
        self._batch_values.observe(values)
        self._batch_requests.observe(requests)
        self._commit_seconds.observe(seconds)

    def failed(self, requests: int, values: int, seconds: float) -> None:
        self._transactions.labels("failed").inc()
        self._commit_seconds.observe(seconds)

    def refused(self, values: int) -> None:
        self._refused.inc(values)


class CommitterQueueCollector(Collector):
    """Queue depth, read at scrape time."""

    def __init__(self, committer: GroupCommitter, max_queued_values: int) -> None:
        self._committer = committer
        self._max = max_queued_values

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily(
            "scout_ingest_queue_values",
            "Values accepted and waiting for a group-commit transaction",
            value=self._committer.queued_values,
        )
        yield GaugeMetricFamily(
            "scout_ingest_queue_requests",
            "Requests waiting for a group-commit transaction",
            value=self._committer.queued_requests,
        )
        yield GaugeMetricFamily(
            "scout_ingest_queue_max_values",
            "INGEST_MAX_QUEUED_VALUES: beyond it writes are refused",
            value=self._max,
        )
        yield GaugeMetricFamily(
            "scout_ingest_transactions_in_flight",
            "Group-commit transactions running now (at most INGEST_WRITERS)",
            value=self._committer.transactions_in_flight,
        )
