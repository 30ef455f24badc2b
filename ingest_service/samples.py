"""What a valid write is: metric names, values, times and sizes (checked again here, whoever
the caller is, because the database must never hold what the API promises it refuses). The
rules themselves live in scout_kit.sample_rules."""

from __future__ import annotations

import functools
import math
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from scout.ingest.v1 import ingest_pb2
from scout_kit.sample_rules import (
    MAX_FUTURE,
    MAX_FUTURE_MINUTES,
    MAX_METRICS_PER_SAMPLE,
    MAX_SAMPLES,
    METRIC_NAME,
    METRIC_NAME_LIST,
    METRIC_NAME_PATTERN,
)

_EPOCH_MICROS = 1_000_000


class InvalidWrite(ValueError):
    """A write the service refuses; the message is safe to show the caller."""


@dataclass(frozen=True)
class Write:
    """One request's samples, ready for the database: sample i has the time `stamps[i]` and the
    next `sizes[i]` entries of `names` and `values`."""

    server_id: str
    account_id: str
    stamps: list[int]
    sizes: list[int]
    names: list[str]
    values: list[float]

    def __len__(self) -> int:
        return len(self.values)


def canonical_uuid(text: str) -> str | None:
    """The canonical form of a UUID, None if `text` is not one. Text already canonical (what
    the gateway sends) is recognised by its pattern, at the same cost for any number of
    servers: a cache of parsed ids churned once a fleet's servers and accounts outnumbered it
    (at 10,000 servers two misses a post). Other forms are parsed, and the few seen
    remembered, for text no longer than any form uuid.UUID takes."""
    if _CANONICAL_UUID.fullmatch(text):
        return text
    if len(text) > 45:
        return None
    return _canonical_uuid(text)


# str(uuid.UUID(x)) == x exactly for text of this form (lower-case hex, hyphens 8-4-4-4-12).
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@functools.lru_cache(maxsize=1024)
def _canonical_uuid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def micros(moment: datetime) -> int:
    delta = moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * _EPOCH_MICROS + delta.microseconds


@dataclass(frozen=True)
class Window:
    """The sample times a write may hold at one moment, in microseconds since the epoch: made
    once per batch of writes rather than once per write."""

    oldest: int
    newest: int
    late: timedelta
    retention: timedelta


def accepted_window(
    now: datetime, late: timedelta, retention: timedelta, packed_through: datetime | None = None
) -> Window:
    """From the late-sample window back (never wider than the retention, and never into a day
    already packed: the window may have been widened since) to MAX_FUTURE ahead."""
    oldest = now - min(late, retention)
    if packed_through is not None:
        oldest = max(oldest, packed_through)
    return Window(micros(oldest), micros(now + MAX_FUTURE), late, retention)


def write_from_columns(columns: ingest_pb2.SampleColumns, window: Window) -> Write:
    """Check one flattened post; InvalidWrite names the first rule it breaks."""
    server_id = canonical_uuid(columns.server_id)
    account_id = canonical_uuid(columns.account_id)
    if server_id is None or account_id is None:
        raise InvalidWrite("server_id and account_id must be UUIDs")
    # Slices: one call each to copy a repeated field, cheaper than iterating it.
    stamps = columns.sample_ts_micros[:]
    sizes = columns.sample_sizes[:]
    names = columns.names[:]
    values = columns.values[:]
    if not stamps:
        raise InvalidWrite("no samples")
    if len(stamps) > MAX_SAMPLES:
        raise InvalidWrite(f"at most {MAX_SAMPLES} samples per request")
    if len(sizes) != len(stamps) or sum(sizes) != len(names) or len(names) != len(values):
        raise InvalidWrite("sample_sizes, names and values do not line up")
    _check_samples(stamps, sizes, names, window)
    joined = "\n".join(names)
    if joined.count("\n") != len(names) - 1 or not METRIC_NAME_LIST.fullmatch(joined):
        for name in names:
            if not METRIC_NAME.fullmatch(name):
                raise InvalidWrite(f"metric name {name[:60]!r} must match {METRIC_NAME_PATTERN}")
    # A sum of finite values is finite unless it overflows; only then is each value looked at.
    if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
        raise InvalidWrite("metric values must be finite numbers")
    return Write(server_id, account_id, stamps, sizes, names, values)


def _check_samples(stamps: list[int], sizes: list[int], names: list[str], window: Window) -> None:
    newest, oldest = window.newest, window.oldest
    start = 0
    for index, (stamp, size) in enumerate(zip(stamps, sizes, strict=True)):
        if not 1 <= size <= MAX_METRICS_PER_SAMPLE:
            raise InvalidWrite(
                f"/samples/{index}: a sample has 1 to {MAX_METRICS_PER_SAMPLE} metrics"
            )
        if stamp > newest:
            raise InvalidWrite(
                f"/samples/{index}: ts is more than {MAX_FUTURE_MINUTES} minutes in the future"
            )
        if stamp < oldest:
            raise InvalidWrite(
                f"/samples/{index}: ts is older than the late-sample window "
                f"({window.late // timedelta(hours=1)} hours of the "
                f"{window.retention.days}-day retention period)"
            )
        if size > 1 and len(set(names[start : start + size])) != size:
            raise InvalidWrite(f"/samples/{index}: a metric name appears twice")
        start += size
