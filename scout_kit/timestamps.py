"""Time on the wire and in text: datetime <-> protobuf Timestamp, and the one text format every
answer, log line and command prints (RFC 3339, UTC, milliseconds, `Z`)."""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf.timestamp_pb2 import Timestamp

# The instants a query or a request may name: what both a datetime and a protobuf Timestamp can
# hold, a day inside either end so that a default range or a bucket beside one cannot overflow.
EARLIEST_TIME = datetime(1, 1, 2, tzinfo=UTC)
LATEST_TIME = datetime(9999, 12, 30, tzinfo=UTC)
TIME_RANGE_TEXT = "0001-01-02 and 9999-12-30"


def timestamp_fault(stamp: Timestamp) -> str | None:
    """Why a Timestamp from a request cannot be taken (out of range, bad nanos), or None."""
    if not 0 <= stamp.nanos <= 999_999_999:
        return "nanos must be from 0 to 999999999"
    if not EARLIEST_TIME.timestamp() <= stamp.seconds <= LATEST_TIME.timestamp():
        return f"must be between {TIME_RANGE_TEXT}"
    return None


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
