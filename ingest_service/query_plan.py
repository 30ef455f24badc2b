"""Which data answers a query: the coarsest rollup tier whose width divides the step, and finer
data wherever that tier is not exact; for a step of more than an hour that is not a whole number
of hours (90 minutes), the hours that lie wholly inside a query bucket come from the hour tier.

A tier bucket is exact when no pending mark exists for it (a minute: no tier-1 mark; an hour: no
tier-2 mark and no tier-1 mark in any of its minutes). The plan covers [start, end) exactly once
with intervals of three sources: whole hours from the 1-hour tier, whole minutes from the
1-minute tier, and everything else (the edges of the range, stale minutes) from raw samples.
Every tier bucket read falls in one query bucket (the step is a multiple of the tier's width,
or the plan took only hours that lie inside one), so partial aggregates from the three sources
combine exactly (sums up to rounding).

Raw samples are kept for days and the minute tier for months (`Retention`), so a range that
begins before a source's retention can only be served at the next tier's resolution: its step is
rounded up to whole minutes or hours first (`served_step`; the answer says which step it used).
Otherwise a 30-day chart asked at 5184 s (500 points) would be planned on raw samples only, and
every bucket older than the raw retention would come back empty.
All times are microseconds since the epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTE = 60_000_000
HOUR = 3_600_000_000
TIER_MINUTE = 1
TIER_HOUR = 2
TIER_WIDTHS = {TIER_MINUTE: MINUTE, TIER_HOUR: HOUR}

Interval = tuple[int, int]


@dataclass
class Plan:
    raw: list[Interval] = field(default_factory=list)
    m1: list[Interval] = field(default_factory=list)
    h1: list[Interval] = field(default_factory=list)

    @property
    def rows_hint(self) -> int:
        """Tier buckets read (an estimate of rows per metric set), for tests and logs."""
        return sum((hi - lo) // MINUTE for lo, hi in self.m1) + sum(
            (hi - lo) // HOUR for lo, hi in self.h1
        )


@dataclass(frozen=True)
class Retention:
    """How long raw samples and the minute tier are kept (the hour tier the longest), in
    microseconds. A source certainly still holds everything newer than now minus its retention:
    a partition is dropped only once wholly past it (and its data rolled up)."""

    raw: int
    minutes: int


def served_step(step_seconds: int, start: int, now: int, retention: Retention) -> int:
    """The step a query from `start` is answered at: the one asked, rounded up to whole minutes
    when the range begins before the raw retention, to whole hours before the minute tier's (a
    bucket that split a tier bucket could not be computed from the tier). Rounding up never
    gives more points than the query was allowed."""
    unit = 1
    if start < now - retention.raw:
        unit = 60
    if start < now - retention.minutes:
        unit = 3600
    return -(-step_seconds // unit) * unit


def tier_for_step(step_seconds: int) -> int | None:
    """The coarsest tier whose width divides the step, None when only raw samples can serve."""
    step = step_seconds * 1_000_000
    for tier in (TIER_HOUR, TIER_MINUTE):
        if step % TIER_WIDTHS[tier] == 0:
            return tier
    return None


def _ceil(us: int, width: int) -> int:
    return -(-us // width) * width


def _floor(us: int, width: int) -> int:
    return us // width * width


def _append(intervals: list[Interval], lo: int, hi: int) -> None:
    """Add [lo, hi), merged with the last interval when they touch."""
    if lo >= hi:
        return
    if intervals and intervals[-1][1] == lo:
        intervals[-1] = (intervals[-1][0], hi)
    else:
        intervals.append((lo, hi))


def plan_query(start: int, end: int, step_seconds: int, stale: list[tuple[int, int]]) -> Plan:
    """Cover [start, end) given the stale buckets (tier, bucket start) of the server."""
    plan = Plan()
    stale_minutes = {bucket for tier, bucket in stale if tier == TIER_MINUTE}
    stale_hours = {bucket for tier, bucket in stale if tier == TIER_HOUR}
    stale_hours |= {_floor(minute, HOUR) for minute in stale_minutes}
    tier = tier_for_step(step_seconds)
    step = step_seconds * 1_000_000
    if tier is None:
        _append(plan.raw, start, end)
    elif tier == TIER_HOUR:
        _hours(plan, start, end, stale_hours, stale_minutes)
    elif step > HOUR:
        # Query buckets that do not start on hours, but hold whole hours: read the minute tier
        # only around them (a 30-day chart at 90 minutes reads a third of its minutes).
        lo = start
        while lo < end:
            hi = min(_floor(lo, step) + step, end)
            _hours(plan, lo, hi, stale_hours, stale_minutes)
            lo = hi
    else:
        _minutes(plan, start, end, stale_minutes)
    return plan


def _hours(
    plan: Plan, start: int, end: int, stale_hours: set[int], stale_minutes: set[int]
) -> None:
    """Cover [start, end) with its whole exact hours from the hour tier, the rest with minutes."""
    first, last = _ceil(start, HOUR), _floor(end, HOUR)
    if first >= last:
        _minutes(plan, start, end, stale_minutes)
        return
    _minutes(plan, start, first, stale_minutes)
    hour = first
    for bad in sorted(h for h in stale_hours if first <= h < last):
        _append(plan.h1, hour, bad)
        _minutes(plan, bad, bad + HOUR, stale_minutes)
        hour = bad + HOUR
    _append(plan.h1, hour, last)
    _minutes(plan, last, end, stale_minutes)


def _minutes(plan: Plan, start: int, end: int, stale_minutes: set[int]) -> None:
    first, last = _ceil(start, MINUTE), _floor(end, MINUTE)
    if first >= last:
        _append(plan.raw, start, end)
        return
    _append(plan.raw, start, first)
    minute = first
    for bad in sorted(m for m in stale_minutes if first <= m < last):
        _append(plan.m1, minute, bad)
        _append(plan.raw, bad, bad + MINUTE)
        minute = bad + MINUTE
    _append(plan.m1, minute, last)
    _append(plan.raw, last, end)
