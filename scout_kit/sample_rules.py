"""The rules of metric samples and queries, defined once: the gateway enforces them on the public
API, the ingest service again on whatever reaches it, and the OpenAPI document states them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Posting: the body as sent and as inflated, samples per request, metrics per sample.
MAX_BODY_BYTES = 1024 * 1024
MAX_SAMPLES = 1000
MAX_METRICS_PER_SAMPLE = 500
# How far ahead of the receiving service's clock a sample may be.
MAX_FUTURE = timedelta(minutes=5)
MAX_FUTURE_MINUTES = int(MAX_FUTURE.total_seconds() // 60)
METRIC_NAME_PATTERN = "[A-Za-z0-9_.:/-]{1,200}"
METRIC_NAME = re.compile(METRIC_NAME_PATTERN)
# Every name of a write checked at once: one regex call over the names joined by newlines (a
# character no valid name holds) instead of one call per name.
METRIC_NAME_LIST = re.compile(f"{METRIC_NAME_PATTERN}(?:\n{METRIC_NAME_PATTERN})*")

# Retention of raw samples is the ingest service's setting; a sample older than it is refused.
# This is the widest it can be set to, which the gateway checks before asking.
MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 3650
DEFAULT_RAW_RETENTION_DAYS = 7
# The late-sample window, also the ingest service's setting: a sample older than it is refused,
# so closed days can be packed (ingest_service.compaction) and no write ever touches packed
# data. At least an hour, at most the raw retention; the default covers twice a default agent's
# spool (24 h), or the whole retention when that is shorter. The gateway checks the widest.
MIN_LATE_SAMPLE_HOURS = 1
MAX_LATE_SAMPLE_HOURS = MAX_RETENTION_DAYS * 24
DEFAULT_LATE_SAMPLE_HOURS = 48

# Queries: buckets per series, metrics per query, and points per answer.
MAX_POINTS_PER_SERIES = 1000
# The widest bucket a query may ask for (a year; a wider one is no question anyone asks, and
# its seconds must fit the uint32 of the contract).
MAX_STEP_SECONDS = 366 * 86_400
MAX_NAMES_PER_QUERY = 50
MAX_POINTS_PER_QUERY = 20_000


def bucket_count(start: datetime, end: datetime, step_seconds: int) -> int:
    """Epoch-aligned buckets of `step_seconds` touched by [start, end): the points per series a
    query asks for, which MAX_POINTS_PER_SERIES bounds."""
    step = step_seconds * 1_000_000
    return (_micros(end) - 1) // step - _micros(start) // step + 1


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)
