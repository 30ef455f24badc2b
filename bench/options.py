"""Command-line options of `python -m bench`."""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SCENARIOS = (1, 2, 3, 4, 5, 6, 7, 8, 9)


@dataclass(frozen=True)
class Options:
    scenarios: frozenset[int]
    duration: float
    warmup: float
    connections: int
    rotations: int
    logins: int
    latency_samples: int
    client: str  # "wrk" or "python"
    json_path: Path | None
    profile_dir: Path | None
    service_log_level: str
    quick: bool
    # Scenario 8's simulated month.
    storage_servers: int = 100
    storage_days: int = 30
    storage_interval: int = 5

    def wants(self, scenario: int) -> bool:
        return scenario in self.scenarios


def _scenario_list(text: str) -> frozenset[int]:
    try:
        chosen = frozenset(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,2: {text!r}") from None
    unknown = chosen - set(SCENARIOS)
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"scenarios are {SCENARIOS}, got {text!r}")
    return chosen


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Server Scout benchmarks: figures and ratios against a bare aiohttp TLS hello "
        "measured in the same run. Never a pass/fail test.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="about one second per scenario (smoke runs); figures are rough",
    )
    parser.add_argument(
        "--only",
        type=_scenario_list,
        default=frozenset(SCENARIOS),
        metavar="N[,N...]",
        help="run only these scenarios (1 hello, 2 key auth, 3 cache miss, "
        "4 rotation, 5 agent posts, 6 sessions, 7 agent footprint, 8 storage month and "
        "chart, 9 ingest cost as servers grow); the baseline always runs",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds measured per throughput scenario (default 6, quick 1)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="concurrent keep-alive connections for throughput (default 16)",
    )
    parser.add_argument(
        "--rotations",
        type=int,
        default=None,
        help="rotations in scenario 4 (default 200, quick 20)",
    )
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk if on PATH (auto), or the asyncio client",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        dest="json_path",
        help="also write the results as JSON to this file",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        dest="profile_dir",
        help="run the main gateway and the ingest service under cProfile and write "
        "gateway.pstats and ingest.pstats here (distorts their figures)",
    )
    parser.add_argument(
        "--service-log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="LOG_LEVEL of the services (default info, as deployed)",
    )
    parser.add_argument(
        "--storage-servers",
        type=int,
        default=None,
        help="servers in scenario 8's simulated month (default 100, quick 3)",
    )
    parser.add_argument(
        "--storage-days", type=int, default=None, help="days simulated (default 30, quick 30)"
    )
    parser.add_argument(
        "--storage-interval",
        type=int,
        default=None,
        help="seconds between a server's samples (default 5, quick 60)",
    )
    args = parser.parse_args(argv)
    quick: bool = args.quick
    duration = args.duration if args.duration is not None else (1.0 if quick else 6.0)
    if duration <= 0 or args.connections < 1:
        parser.error("--duration and --connections must be positive")
    client: str = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        parser.error("--client wrk: wrk is not on PATH (apt-get install wrk)")
    rotations = args.rotations if args.rotations is not None else (20 if quick else 200)
    return Options(
        scenarios=args.only,
        duration=duration,
        warmup=0.3 if quick else 1.0,
        connections=args.connections,
        rotations=max(1, rotations),
        logins=5 if quick else 40,
        latency_samples=100 if quick else 1000,
        client=client,
        json_path=args.json_path,
        profile_dir=args.profile_dir,
        service_log_level=args.service_log_level,
        quick=quick,
        storage_servers=max(1, args.storage_servers or (3 if quick else 100)),
        storage_days=max(1, args.storage_days or 30),
        storage_interval=max(1, args.storage_interval or (60 if quick else 5)),
    )
