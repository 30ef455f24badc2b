"""The one time formatter of the API: RFC 3339 UTC text, milliseconds and `Z`
(scout_kit.timestamps.format_time writes it for every service and command)."""

from __future__ import annotations

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


def iso_micros(us: int) -> str:
    """RFC 3339 UTC text of microseconds since the unix epoch."""
    return format_time(_EPOCH + timedelta(microseconds=us))
