"""The benchmark runs end to end and produces figures; it asserts no speed (`make bench` does)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
