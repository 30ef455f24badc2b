"""How the bench folds several measured windows of one request into one result (scenario 6a),
and how it reads wrk's counts of what failed."""

import pytest

from bench.load import LoadResult, parse_wrk


def _window(requests: int, seconds: float, p50: float, p99: float, cpu: float) -> LoadResult:
    return LoadResult(
        requests=requests,
        seconds=seconds,
        p50_ms=p50,
        p99_ms=p99,
        cpu_seconds={"gateway-1": cpu, "client": cpu / 4},
        error_kinds={"HTTP 503": requests // 100, "connection lost": requests // 500},
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
    assert combined.error_kinds == {"HTTP 503": 60, "connection lost": 12}
    assert combined.errors == 72
    assert combined.rps == pytest.approx(1000.0)  # not the mean of the windows' rates
    assert combined.p50_ms == 2.0
    assert combined.p99_ms == 9.0
    assert combined.cpu_ms_per_request() == pytest.approx({"gateway-1": 0.1, "client": 0.025})


def test_no_windows_is_an_error() -> None:
    with pytest.raises(ValueError, match="no windows"):
        LoadResult.combined([])


WRK_OUTPUT = """\
Running 6s test @ https://127.0.0.1:40123/api/v1/metrics
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.61ms    3.02ms  41.20ms   80.12%
  Latency Distribution
     50%    9.19ms
     75%   11.02ms
     90%   13.40ms
     99%   15.87ms
  39151 requests in 6.00s, 5.01MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 16
Requests/sec:   6525.10
"""


def test_wrk_errors_are_told_apart() -> None:
    parsed = parse_wrk(WRK_OUTPUT)
    assert parsed.requests == 39151
    assert parsed.seconds == pytest.approx(6.0)
    assert (parsed.p50_ms, parsed.p99_ms) == (9.19, 15.87)
    assert parsed.error_kinds == {"non-2xx or 3xx": 16, "socket read": 3, "socket timeout": 2}
    assert parsed.errors == 21
