"""Planning a metric query from its query string: the time range, the step (asked for, or the
nice step that gives at most `points` points, or about DEFAULT_POINTS by default) and the names,
each checked against the shared rules (scout_kit.sample_rules) with a 422 that names the
parameter."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web

from gateway.problems import Problem
from gateway.samples import RFC3339, micros, parse_timestamp_micros
from scout_kit.sample_rules import (
    MAX_NAMES_PER_QUERY,
    MAX_POINTS_PER_QUERY,
    MAX_POINTS_PER_SERIES,
    MAX_STEP_SECONDS,
    METRIC_NAME,
    METRIC_NAME_PATTERN,
    bucket_count,
)
from scout_kit.timestamps import EARLIEST_TIME, LATEST_TIME, TIME_RANGE_TEXT

DEFAULT_RANGE = timedelta(hours=1)
# The default step gives about this many points, rounded up to a step a person would choose.
DEFAULT_POINTS = 300
NICE_STEPS = (
    1,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)
STEP = re.compile(r"(\d{1,9})([smhd]?)")
STEP_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class MetricQuery:
    names: list[str]
    start: datetime
    end: datetime
    step_seconds: int


def _invalid_query(detail: str, parameter: str) -> Problem:
    return Problem(422, "Unprocessable Content", detail, type_="invalid-query", parameter=parameter)


def metric_query(request: web.Request, now: datetime) -> MetricQuery:
    """The query `names`, `from`, `to` and `step` ask for (the last hour up to `now` and the
    default step when absent); 422 when a parameter is malformed or the answer too large."""
    names = _names(request)
    end = _query_time(request, "to") or now
    start = _query_time(request, "from") or end - DEFAULT_RANGE
    if start >= end:
        raise _invalid_query("from must be before to.", "from")
    raw_step = request.query.get("step", "")
    raw_points = request.query.get("points", "")
    if raw_step and raw_points:
        raise _invalid_query("Give step or points, not both.", "points")
    if raw_points:
        step = step_for_points(start, end, _points(raw_points))
    elif raw_step:
        step = _step(raw_step)
    else:
        step = default_step((end - start).total_seconds())
    points = bucket_count(start, end, step)
    if points > MAX_POINTS_PER_SERIES:
        raise _invalid_query(
            f"This query asks for {points} points per series; at most {MAX_POINTS_PER_SERIES}. "
            "Use a larger step or a shorter range.",
            "step",
        )
    if len(names) * points > MAX_POINTS_PER_QUERY:
        raise _invalid_query(
            f"This query asks for {len(names) * points} points; at most "
            f"{MAX_POINTS_PER_QUERY}. Use a larger step, a shorter range or fewer names.",
            "names",
        )
    return MetricQuery(names, start, end, step)


def _query_time(request: web.Request, parameter: str) -> datetime | None:
    raw = request.query.get(parameter)
    if raw is None or raw == "":
        return None
    malformed = _invalid_query(f"{parameter} must be RFC 3339 text or unix seconds.", parameter)
    try:
        value: str | float = raw if RFC3339.fullmatch(raw) else float(raw)
    except ValueError:
        raise malformed from None
    try:
        us = parse_timestamp_micros(value, parameter)
    except Problem:
        raise malformed from None
    if not micros(EARLIEST_TIME) <= us <= micros(LATEST_TIME):
        raise _invalid_query(f"{parameter} must be between {TIME_RANGE_TEXT}.", parameter)
    return _EPOCH + timedelta(microseconds=us)


def _step(raw: str) -> int:
    match = STEP.fullmatch(raw.strip().lower())
    if not match:
        raise _invalid_query(
            "step must be a whole number of seconds, optionally with a unit: 30s, 5m, 1h, 1d.",
            "step",
        )
    seconds = int(match.group(1)) * STEP_UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_STEP_SECONDS:
        raise _invalid_query(
            f"step must be from 1 second to {MAX_STEP_SECONDS // 86_400} days.", "step"
        )
    return seconds


def _points(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_POINTS_PER_SERIES:
        raise _invalid_query(
            f"points must be a whole number from 1 to {MAX_POINTS_PER_SERIES}.", "points"
        )
    return int(raw)


def step_for_points(start: datetime, end: datetime, points: int) -> int:
    """The smallest step a person would choose (NICE_STEPS, then whole days) that gives at most
    `points` buckets over [start, end): each is a multiple of a rollup tier's width where it can
    be, so a chart asked for by its width reads about one tier row per point (a 30-day chart of
    500 points: 2 h, the hour tier, rather than 5184 s and about 30 minute rows per point)."""
    wanted = (end - start).total_seconds() / points
    candidates = [s for s in NICE_STEPS if s >= wanted]
    day = 86_400
    candidates.append(max(day, math.ceil(wanted / day) * day))
    for step in candidates:
        while step <= MAX_STEP_SECONDS:
            if bucket_count(start, end, step) <= points:
                return step
            if step < day:
                break  # the next nice step
            step += day
    raise _invalid_query(
        f"{points} points cannot cover this range: even a step of "
        f"{MAX_STEP_SECONDS // 86_400} days gives more. Ask for more points or a shorter range.",
        "points",
    )


def default_step(span_seconds: float) -> int:
    wanted = span_seconds / DEFAULT_POINTS
    for step in NICE_STEPS:
        if step >= wanted:
            return step
    return math.ceil(wanted / 86400) * 86400


def _names(request: web.Request) -> list[str]:
    names: list[str] = []
    for raw in request.query.getall("names", []):
        names.extend(n.strip() for n in raw.split(",") if n.strip())
    names = list(dict.fromkeys(names))
    for name in names:
        if not METRIC_NAME.fullmatch(name):
            raise _invalid_query(
                f"The metric name {name[:60]!r} must match {METRIC_NAME_PATTERN}.", "names"
            )
    if len(names) > MAX_NAMES_PER_QUERY:
        raise _invalid_query(f"At most {MAX_NAMES_PER_QUERY} names per query.", "names")
    return names
