"""Agent posts: the body (read once by gateway.request_body, gzip inflated with a cap) validated
into the flat columns the ingest service stores.

Valid posts, the hot path, are decoded by msgspec against the post's shape, which validates
types while it parses (no intermediate dicts of Any), then checked against the sample rules in a
few passes over flat lists. Anything that fails is validated again by the plain-JSON path, which
names the sample and the rule in the 422; both apply the same rules (scout_kit.sample_rules).
The body is at most MAX_BODY_BYTES as sent and as inflated, and nesting deeper than the decoders'
recursion limit is a 400, so neither path has an unbounded input.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta

import msgspec

from gateway.problems import Problem
from gateway.request_body import parse_json_object
from scout.ingest.v1 import ingest_pb2
from scout_kit.sample_rules import (
    MAX_FUTURE,
    MAX_FUTURE_MINUTES,
    MAX_LATE_SAMPLE_HOURS,
    MAX_METRICS_PER_SAMPLE,
    MAX_SAMPLES,
    METRIC_NAME,
    METRIC_NAME_LIST,
    METRIC_NAME_PATTERN,
)

# The widest late-sample window the ingest service can be configured with; it checks its own,
# narrower one itself (the answer is the same 422).
MAX_LATE = timedelta(hours=MAX_LATE_SAMPLE_HOURS)
RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Sample(msgspec.Struct):
    ts: str | int | float
    metrics: dict[str, float]


class _Post(msgspec.Struct):
    samples: list[_Sample]


_DECODER = msgspec.json.Decoder(_Post)


def invalid(detail: str, pointer: str) -> Problem:
    return Problem(422, "Unprocessable Content", detail, type_="invalid-metrics", pointer=pointer)


def parse_timestamp_micros(value: object, where: str) -> int:
    """Microseconds since the epoch from RFC 3339 text or unix seconds."""
    if isinstance(value, str):
        if not RFC3339.fullmatch(value):
            raise invalid(f"{where}/ts is not an RFC 3339 timestamp.", f"{where}/ts")
        try:
            parsed = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        except ValueError:
            raise invalid(f"{where}/ts is not a valid date and time.", f"{where}/ts") from None
        delta = parsed - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if type(value) is int:
        if abs(value) > 10**12:
            raise invalid(f"{where}/ts is out of range.", f"{where}/ts")
        return value * 1_000_000
    if type(value) is float:
        if not math.isfinite(value) or abs(value) > 1e12:
            raise invalid(f"{where}/ts is out of range.", f"{where}/ts")
        return round(value * 1_000_000)
    raise invalid(f"{where}/ts must be RFC 3339 text or unix seconds.", f"{where}/ts")


def columns_from_body(
    raw: bytes, now: datetime, server_id: str, account_id: str
) -> ingest_pb2.SampleColumns:
    """The post's columns; any violation is a 422 (400 for a body that is not JSON) that names
    the sample and the rule, and then nothing of the post is written."""
    columns = _fast_columns(raw, now)
    if columns is None:
        # Only invalid posts get here: the slow path says exactly what is wrong.
        # Non-finite values get the 422 that names the sample (parse_samples).
        columns = parse_samples(parse_json_object(raw, non_finite=True), now)
    columns.server_id = server_id
    columns.account_id = account_id
    return columns


def _fast_columns(raw: bytes, now: datetime) -> ingest_pb2.SampleColumns | None:
    """The columns of a valid post, or None for anything the slow path must explain."""
    try:
        post = _DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    samples = post.samples
    if not samples or len(samples) > MAX_SAMPLES:
        return None
    oldest, newest = _window(now)
    stamps, sizes, names, values = _columns()
    for sample in samples:
        ts = sample.ts
        if type(ts) is int and abs(ts) <= 10**12:
            stamp = ts * 1_000_000
        elif type(ts) is float and math.isfinite(ts) and abs(ts) <= 1e12:
            stamp = round(ts * 1_000_000)
        else:
            return None  # text (rare for agents) and anything else: the careful path
        metrics = sample.metrics
        if not oldest <= stamp <= newest or not 1 <= len(metrics) <= MAX_METRICS_PER_SAMPLE:
            return None
        stamps.append(stamp)
        sizes.append(len(metrics))
        names.extend(metrics)
        values.extend(metrics.values())
    joined = "\n".join(names)
    if joined.count("\n") != len(names) - 1 or not METRIC_NAME_LIST.fullmatch(joined):
        return None
    if not math.isfinite(sum(values)) and not all(map(math.isfinite, values)):
        return None
    return ingest_pb2.SampleColumns(
        sample_ts_micros=stamps, sample_sizes=sizes, names=names, values=values
    )


def parse_samples(body: dict[str, object], now: datetime) -> ingest_pb2.SampleColumns:
    """Validate a post into the columns the ingest service stores; any violation is a 422 that
    names the sample and the rule, and then nothing of the post is written."""
    samples = body.get("samples")
    if not isinstance(samples, list) or not samples:
        raise invalid("samples must be a non-empty array.", "/samples")
    if len(samples) > MAX_SAMPLES:
        raise invalid(
            f"At most {MAX_SAMPLES} samples per request; this one has {len(samples)}.", "/samples"
        )
    oldest, newest = _window(now)
    stamps, sizes, names, values = _columns()
    for index, sample in enumerate(samples):
        where = f"/samples/{index}"
        if not isinstance(sample, dict):
            raise invalid(f"{where} must be an object.", where)
        ts = parse_timestamp_micros(sample.get("ts"), where)
        if ts > newest:
            raise invalid(
                f"{where}/ts is more than {MAX_FUTURE_MINUTES} minutes in the future.",
                f"{where}/ts",
            )
        if ts < oldest:
            raise invalid(f"{where}/ts is older than the late-sample window.", f"{where}/ts")
        metrics = sample.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise invalid(f"{where}/metrics must be a non-empty object.", f"{where}/metrics")
        if len(metrics) > MAX_METRICS_PER_SAMPLE:
            raise invalid(
                f"{where}/metrics has {len(metrics)} metrics; at most "
                f"{MAX_METRICS_PER_SAMPLE} per sample.",
                f"{where}/metrics",
            )
        _check_metrics(metrics, where)
        stamps.append(ts)
        sizes.append(len(metrics))
        names.extend(metrics)
        values.extend(metrics.values())
    return ingest_pb2.SampleColumns(
        sample_ts_micros=stamps,
        sample_sizes=sizes,
        names=names,
        values=values,
    )


def _window(now: datetime) -> tuple[int, int]:
    """The oldest and newest sample time the gateway lets through, in microseconds."""
    now_us = micros(now)
    return now_us - _LATE_MICROS, now_us + _FUTURE_MICROS


def _columns() -> tuple[list[int], list[int], list[str], list[float]]:
    return [], [], [], []


def _check_metrics(metrics: dict[str, object], where: str) -> None:
    for name, value in metrics.items():
        if not METRIC_NAME.fullmatch(name):
            raise invalid(
                f"{where}/metrics: the metric name {name[:60]!r} must match {METRIC_NAME_PATTERN}.",
                f"{where}/metrics",
            )
        # Exactly int or float: a JSON true is no number here, though bool is an int to Python.
        if type(value) not in (float, int) or not isinstance(value, float | int):
            raise invalid(f"{where}/metrics/{name} must be a number.", f"{where}/metrics/{name}")
        if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, int) and abs(value) > 1e308
        ):
            raise invalid(
                f"{where}/metrics/{name} must be a finite number.", f"{where}/metrics/{name}"
            )


def micros(moment: datetime) -> int:
    return _micros_of(moment - _EPOCH)


def _micros_of(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_LATE_MICROS = _micros_of(MAX_LATE)
_FUTURE_MICROS = _micros_of(MAX_FUTURE)
