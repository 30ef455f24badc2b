"""The one time formatter of the API: RFC 3339 UTC text, milliseconds and `Z`
(scout_kit.timestamps.format_time writes it for every service and command)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from google.protobuf.timestamp_pb2 import Timestamp

from scout_kit.timestamps import format_time


def iso(ts: Timestamp, present: bool = True) -> str | None:
    """RFC 3339 UTC text of a protobuf timestamp, or None when the field is unset."""
    if not present:
        return None
    return format_time(ts.ToDatetime())


def iso_timestamp(ts: Timestamp) -> str:
    """RFC 3339 UTC text of a timestamp that is always set."""
    return format_time(ts.ToDatetime())


def iso_datetime(moment: datetime) -> str:
    """RFC 3339 UTC text of a datetime."""
    return format_time(moment)


_EPOCH = datetime(1970, 1, 1)
_DAY = 86_400_000_000


def iso_micros(stamps: Iterable[int]) -> list[str]:
    """format_time of each of many instants in microseconds since the unix epoch (a chart's
    bucket starts): each date and each time of day is formatted once per call (a chart's
    buckets share a few of each)."""
    dates: dict[int, str] = {}
    times: dict[int, str] = {}
    texts: list[str] = []
    for us in stamps:
        day, rest = divmod(us, _DAY)
        date = dates.get(day)
        if date is None:
            date = dates[day] = (_EPOCH + timedelta(days=day)).date().isoformat() + "T"
        time = times.get(rest)
        if time is None:
            time = times[rest] = (_EPOCH + timedelta(microseconds=rest)).time().isoformat(
                timespec="milliseconds"
            ) + "Z"
        texts.append(date + time)
    return texts
