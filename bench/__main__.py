"""`python -m bench`: run the benchmarks, print the table, optionally write JSON."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from bench.environment import DependencyUnavailable, bench_environment
from bench.options import parse_args
from bench.processes import StartFailed
from bench.scenarios import print_profile, run_bench


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="bench: %(levelname)s %(message)s")
    print(
        f"Server Scout bench: client={options.client}, {options.connections} connections, "
        f"{options.duration:g}s per scenario after {options.warmup:g}s warm-up"
        f"{' (quick: rough figures)' if options.quick else ''}",
        flush=True,
    )
    # A stop signal ends the run as Ctrl-C does, so the fleet it started is stopped with it (by
    # default SIGTERM ends the interpreter without unwinding, and the services run on).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with bench_environment() as env:
            report = asyncio.run(run_bench(options, env))
    except (DependencyUnavailable, StartFailed) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted; its processes are stopped", file=sys.stderr)
        return 130
    print()
    print(report.table())
    print(
        "\nFigures, not assertions: ratios are against scenario 1 of this same run; "
        f"load average at start {report.meta['loadavg_at_start']}."
    )
    if options.json_path is not None:
        report.write_json(options.json_path)
        print(f"JSON written to {options.json_path}")
    if options.profile_dir is not None:
        print_profile(options.profile_dir / "gateway.pstats")
        if (options.profile_dir / "ingest.pstats").exists():
            print_profile(options.profile_dir / "ingest.pstats", title="Ingest service")
    if report.failed:
        print(f"bench: scenarios {report.failed} failed (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
