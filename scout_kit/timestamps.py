"""Time on the wire and in text: datetime <-> protobuf Timestamp, and the one text format every
answer, log line and command prints (RFC 3339, UTC, milliseconds, `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional_timestamp(value: datetime | None) -> Timestamp | None:
    """None stays None, so an unset message field stays unset."""
    return None if value is None else to_timestamp(value)


def format_time(value: datetime) -> str:
    """`2026-11-28T12:00:00.123Z`. A naive datetime is taken as UTC (protobuf's ToDatetime)."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def format_epoch(seconds: float) -> str:
    """format_time of a unix time in seconds (log records, metrics)."""
    return format_time(datetime.fromtimestamp(seconds, UTC))
