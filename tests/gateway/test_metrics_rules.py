"""The sample rules are one definition: the gateway, the ingest service and the OpenAPI document
all state the values of scout_kit.sample_rules."""

from __future__ import annotations

from datetime import timedelta

from gateway import metric_query as gateway_metric_query
from gateway import samples as gateway_samples
from gateway.handlers import metrics as gateway_metrics
from ingest_service import samples as ingest_samples
from ingest_service import servicer as ingest_servicer
from scout_kit import sample_rules as rules


def test_gateway_and_ingest_use_the_shared_rules() -> None:
    # Each module holds the shared objects themselves, not copies of their values.
    shared = {
        gateway_samples: ("METRIC_NAME", "METRIC_NAME_LIST", "MAX_SAMPLES"),
        gateway_metrics: ("MAX_BODY_BYTES",),
        ingest_samples: ("METRIC_NAME", "METRIC_NAME_LIST", "MAX_SAMPLES", "MAX_FUTURE"),
        gateway_metric_query: ("METRIC_NAME", "MAX_NAMES_PER_QUERY", "MAX_POINTS_PER_QUERY"),
        ingest_servicer: ("METRIC_NAME", "MAX_NAMES_PER_QUERY", "MAX_POINTS_PER_SERIES"),
    }
    for module, names in shared.items():
        for name in names:
            assert vars(module)[name] is vars(rules)[name], (module.__name__, name)
    assert timedelta(hours=rules.MAX_LATE_SAMPLE_HOURS) == gateway_samples.MAX_LATE


def test_valid_and_invalid_posts_get_the_same_answer_from_both_decoders() -> None:
    """The msgspec fast path and the careful path agree on what is valid."""
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    ts = int(now.timestamp())
    body = b'{"samples": [{"ts": %d, "metrics": {"a": 1, "b": 2.5}}], "extra": [1]}' % ts
    fast = gateway_samples.columns_from_body(body, now, "s", "a")
    import json

    slow = gateway_samples.parse_samples(json.loads(body), now)
    assert list(fast.names) == list(slow.names) == ["a", "b"]
    assert list(fast.values) == list(slow.values) == [1.0, 2.5]
    assert list(fast.sample_ts_micros) == list(slow.sample_ts_micros)
