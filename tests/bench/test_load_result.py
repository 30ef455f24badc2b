"""How the bench folds several measured windows of one request into one result (scenario 6a)."""

import pytest

from bench.load import LoadResult


def _window(requests: int, seconds: float, p50: float, p99: float, cpu: float) -> LoadResult:
    return LoadResult(
        requests=requests,
        errors=requests // 100,
        seconds=seconds,
        p50_ms=p50,
        p99_ms=p99,
        cpu_seconds={"gateway-1": cpu, "client": cpu / 4},
    )


def test_windows_add_up_and_keep_the_worst_tail() -> None:
    combined = LoadResult.combined(
        [
            _window(1000, 2.0, 3.0, 9.0, 0.2),
            _window(3000, 2.0, 1.0, 4.0, 0.3),
            _window(2000, 2.0, 2.0, 5.0, 0.1),
        ]
    )
    assert combined.requests == 6000
    assert combined.errors == 60
    assert combined.rps == pytest.approx(1000.0)  # not the mean of the windows' rates
    assert combined.p50_ms == 2.0
    assert combined.p99_ms == 9.0
    assert combined.cpu_ms_per_request() == pytest.approx({"gateway-1": 0.1, "client": 0.025})


def test_no_windows_is_an_error() -> None:
    with pytest.raises(ValueError, match="no windows"):
        LoadResult.combined([])
