"""What the ingest service accepts as a write, checked without a database."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from ingest_service.samples import (
    InvalidWrite,
    _canonical_uuid,
    accepted_window,
    canonical_uuid,
    micros,
    write_from_columns,
)
from scout.ingest.v1 import ingest_pb2

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RETENTION = timedelta(days=30)
LATE = timedelta(hours=48)
SERVER = str(uuid.uuid4())
ACCOUNT = str(uuid.uuid4())


def columns(names: list[str], values: list[float]) -> ingest_pb2.SampleColumns:
    return ingest_pb2.SampleColumns(
        server_id=SERVER,
        account_id=ACCOUNT,
        sample_ts_micros=[micros(NOW)],
        sample_sizes=[len(names)],
        names=names,
        values=values,
    )


def test_a_valid_write_has_one_time_per_value() -> None:
    write = write_from_columns(
        columns(["cpu.percent", "a:b/c-d_e"], [1.0, 2.5]), accepted_window(NOW, LATE, RETENTION)
    )
    assert (write.server_id, write.account_id) == (SERVER, ACCOUNT)
    assert write.names == ["cpu.percent", "a:b/c-d_e"]
    assert (write.stamps, write.sizes) == ([micros(NOW)], [2])


@pytest.mark.parametrize("name", ["bad name", "a\nb", "", "x" * 201, "é"])
def test_a_bad_name_is_refused_and_named(name: str) -> None:
    with pytest.raises(InvalidWrite, match="metric name"):
        write_from_columns(columns(["ok", name], [1.0, 2.0]), accepted_window(NOW, LATE, RETENTION))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_value_that_is_not_finite_is_refused(value: float) -> None:
    with pytest.raises(InvalidWrite, match="finite"):
        write_from_columns(columns(["a", "b"], [1.0, value]), accepted_window(NOW, LATE, RETENTION))


def test_finite_values_whose_sum_overflows_are_accepted() -> None:
    write = write_from_columns(
        columns(["a", "b"], [1.7e308, 1.7e308]), accepted_window(NOW, LATE, RETENTION)
    )
    assert write.values == [1.7e308, 1.7e308]


def test_a_sample_older_than_the_late_window_is_refused_even_within_the_retention() -> None:
    def at(moment: datetime) -> ingest_pb2.SampleColumns:
        sample = columns(["a"], [1.0])
        sample.sample_ts_micros[0] = micros(moment)
        return sample

    edge = NOW - LATE
    assert write_from_columns(at(edge), accepted_window(NOW, LATE, RETENTION)).stamps == [
        micros(edge)
    ]
    with pytest.raises(InvalidWrite, match=r"/samples/0: ts is older than the late-sample window"):
        write_from_columns(
            at(edge - timedelta(microseconds=1)), accepted_window(NOW, LATE, RETENTION)
        )
    # Never wider than the retention.
    short = timedelta(hours=2)
    with pytest.raises(InvalidWrite, match="late-sample window"):
        write_from_columns(at(NOW - timedelta(hours=3)), accepted_window(NOW, LATE, short))


def test_canonical_uuid_takes_every_form_and_refuses_the_rest() -> None:
    value = str(uuid.uuid4())
    for form in (value, value.upper(), "{" + value + "}", "urn:uuid:" + value):
        assert canonical_uuid(form) == value
    assert canonical_uuid("not a uuid") is None
    assert canonical_uuid(value + " " * 40) is None
    assert canonical_uuid(value + "\n") is None
    assert canonical_uuid(value.replace("-", "")) == value


def test_canonical_ids_cost_the_same_for_any_number_of_servers() -> None:
    """The ids every write carries are canonical already: they are taken as they are, not
    parsed and cached, so a fleet larger than any cache costs no more per write."""
    before = _canonical_uuid.cache_info()
    ids = [str(uuid.uuid4()) for _ in range(5000)]
    assert [canonical_uuid(i) for i in ids] == [str(uuid.UUID(i)) for i in ids]
    after = _canonical_uuid.cache_info()
    assert (after.hits, after.misses) == (before.hits, before.misses)
