"""datetime <-> protobuf Timestamp, for every service and the gateway."""

from __future__ import annotations

from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp


def to_timestamp(value: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(value)
    return stamp


def optional_timestamp(value: datetime | None) -> Timestamp | None:
    """None stays None, so an unset message field stays unset."""
    return None if value is None else to_timestamp(value)
