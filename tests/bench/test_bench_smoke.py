"""The benchmark runs end to end and produces figures; it asserts no speed (`make bench` does)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ADMIN_POSTGRES_URL, TEST_REDIS_URL

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_bench_reports_baseline_and_key_auth(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    env = {
        **os.environ,
        "BENCH_POSTGRES_URL": ADMIN_POSTGRES_URL,
        "BENCH_REDIS_URL": TEST_REDIS_URL,
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--only",
            "1,2",
            "--client",
            "python",
            "--json",
            str(output),
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Warning" not in completed.stderr, completed.stderr
    assert "bare aiohttp TLS hello" in completed.stdout

    results = {row["key"]: row for row in json.loads(output.read_text())["results"]}
    assert set(results) == {"1", "2"}
    for row in results.values():
        assert row["skipped"] is None
        assert row["samples"] > 0
        assert row["rps"] > 0
        assert 0 < row["p50_ms"] <= row["p99_ms"]
        assert row["ratio"] > 0
    assert results["1"]["ratio"] == 1.0
    assert results["2"]["goal"] == "ratio >= 0.85"


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (from /proc)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The parent pid is the second field after the parenthesised command name.
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_stopped_bench_stops_the_processes_it_started() -> None:
    env = {
        **os.environ,
        "BENCH_POSTGRES_URL": ADMIN_POSTGRES_URL,
        "BENCH_REDIS_URL": TEST_REDIS_URL,
    }
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", "--only", "2", "--duration", "60", "--client", "python"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The hello, the key service and a gateway.
        deadline = time.monotonic() + 60
        started: set[int] = set()
        while len(started) < 3 and time.monotonic() < deadline:
            started |= _children(bench.pid)
            time.sleep(0.1)
        assert len(started) >= 3, started
        bench.send_signal(signal.SIGTERM)
        _, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    left = [pid for pid in started if _alive(pid)]
    for pid in left:  # so that a failure leaves nothing running either
        os.kill(pid, signal.SIGKILL)
    assert bench.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    assert left == []
