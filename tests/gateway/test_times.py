"""The chart formatter writes each instant as the API's one time format does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.times import iso_micros
from scout_kit.timestamps import EARLIEST_TIME, LATEST_TIME, format_time

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def test_many_instants_are_written_as_format_time_writes_each() -> None:
    hour = 3_600_000_000
    start = _micros(datetime(2026, 11, 1, tzinfo=UTC))
    stamps = [start + i * hour for i in range(800)]  # a 30-day chart's hours, days shared
    stamps += [
        0,
        -1,  # just before the epoch: the day before, 23:59:59.999
        -1_000_001,
        999,  # milliseconds are truncated, as isoformat truncates them
        86_399_999_999,
        start + 123_456,
        _micros(EARLIEST_TIME),
        _micros(LATEST_TIME) + 5_400_000_000 + 7_000,
    ]
    expected = [format_time(EPOCH + timedelta(microseconds=us)) for us in stamps]
    assert iso_micros(stamps) == expected
    assert expected[800:804] == [
        "1970-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "1969-12-31T23:59:58.999Z",
        "1970-01-01T00:00:00.000Z",
    ]
