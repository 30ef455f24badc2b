"""The scout-agent's footprint: resident memory and CPU of the real agent process.

The goal (issue 6): RSS <= 20 MB and CPU <= 0.5% of one core at the default 10 s interval. The
agent is built into its single file (`scripts/build_agent.py`) and run as the systemd unit runs
it (`/usr/bin/python3` when present, else this interpreter), sending to `url` with `api_key`
(a running gateway, or the stub below). It samples every second, so the measured window holds
`duration` cycles; CPU is reported as measured and per cycle, and projected to a 10 s interval
(the work per cycle does not depend on the interval). RSS is read from /proc/<pid>/status (VmRSS,
and RssAnon: the part not shared with other processes), CPU from /proc/<pid>/stat.

    python -m bench.agent_footprint [--duration 20]      # against a local HTTPS stub

From the bench: `await asyncio.to_thread(measure, url, key, ca_file, workdir)`, then
`report.add(footprint_row(result))`.
"""

from __future__ import annotations

import argparse
import http.server
import os
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.report import Row

ROOT = Path(__file__).resolve().parents[1]
GOAL_RSS_MB = 20.0
GOAL_CPU_PERCENT_AT_10S = 0.5
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Footprint:
    python: str
    interval: float
    duration: float
    rss_max_kb: int
    rss_avg_kb: float
    rss_anon_max_kb: int
    cpu_seconds: float
    cycles: float
    stderr_tail: list[str] = field(default_factory=list)

    @property
    def cpu_percent(self) -> float:
        """CPU of one core, as measured (at `interval`)."""
        return 100.0 * self.cpu_seconds / self.duration

    @property
    def cpu_ms_per_cycle(self) -> float:
        return 1000.0 * self.cpu_seconds / max(self.cycles, 1.0)

    @property
    def cpu_percent_at_10s(self) -> float:
        return self.cpu_ms_per_cycle / 10_000.0 * 100.0

    def summary(self) -> str:
        return (
            f"scout-agent ({self.python}, {self.interval:g} s interval, {self.duration:g} s): "
            f"RSS max {self.rss_max_kb / 1024:.1f} MB (avg {self.rss_avg_kb / 1024:.1f}, "
            f"private {self.rss_anon_max_kb / 1024:.1f}; goal <= {GOAL_RSS_MB:g}), "
            f"CPU {self.cpu_percent:.2f}% measured = {self.cpu_ms_per_cycle:.1f} ms per cycle "
            f"-> {self.cpu_percent_at_10s:.3f}% at 10 s (goal <= {GOAL_CPU_PERCENT_AT_10S:g}%)"
        )


def _status_kb(pid: int, field_name: str) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After the command: state is field 3, utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def build_agent(workdir: Path) -> Path:
    archive = workdir / "scout-agent.pyz"
    subprocess.run(  # noqa: S603 - our own build script
        [sys.executable, str(ROOT / "scripts" / "build_agent.py"), "--output", str(archive)],
        check=True,
        capture_output=True,
    )
    return archive


def measure(
    url: str,
    api_key: str,
    ca_file: str | None,
    workdir: Path,
    *,
    duration: float = 20.0,
    interval: float = 1.0,
    warmup: float = 3.0,
    python: str | None = None,
) -> Footprint:
    """Run the agent for warmup + duration seconds and measure it over the last `duration`."""
    workdir.mkdir(parents=True, exist_ok=True)
    python = python or (SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable)
    archive = build_agent(workdir)
    env_file = workdir / "agent.env"
    lines = [f"SCOUTAPIKEY={api_key}", f"SCOUTURL={url}", f"SCOUTINTERVAL={interval:g}"]
    lines.append(f"SCOUTSPOOLDIR={workdir / 'spool'}")
    if ca_file:
        lines.append(f"SCOUTCAFILE={ca_file}")
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    log_path = workdir / "agent.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(  # noqa: S603 - the agent we just built
            [python, str(archive), "run", "--env-file", str(env_file)],
            stdout=subprocess.DEVNULL,
            stderr=log,
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"},
        )
        try:
            time.sleep(warmup)
            if process.poll() is not None:
                raise RuntimeError(f"the agent exited: {log_path.read_text()[-500:]}")
            start_cpu = _cpu_seconds(process.pid)
            started = time.monotonic()
            rss: list[int] = []
            anon = 0
            while time.monotonic() - started < duration:
                rss.append(_status_kb(process.pid, "VmRSS"))
                anon = max(anon, _status_kb(process.pid, "RssAnon"))
                time.sleep(1.0)
            cpu = _cpu_seconds(process.pid) - start_cpu
            elapsed = time.monotonic() - started
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return Footprint(
        python=python,
        interval=interval,
        duration=elapsed,
        rss_max_kb=max(rss),
        rss_avg_kb=sum(rss) / len(rss),
        rss_anon_max_kb=anon,
        cpu_seconds=cpu,
        cycles=elapsed / interval,
        stderr_tail=log_path.read_text().splitlines()[-5:],
    )


def footprint_row(result: Footprint, key: str = "7") -> Row:
    """A row for the bench report (its figures are in the label and notes: it is not a load)."""
    row = Row(
        key=key,
        label=(
            f"scout-agent footprint: RSS {result.rss_max_kb / 1024:.1f} MB, "
            f"CPU {result.cpu_percent_at_10s:.3f}% at 10 s"
        ),
        samples=round(result.cycles),
    )
    row.notes.append(result.summary())
    return row


# ---- a local HTTPS stub, so the agent can be measured without the rest of the system -------------


class _Stub(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    posts = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).posts += 1
        self._answer(202, b'{"accepted":1}')

    def do_GET(self) -> None:
        self._answer(200, b'{"kind":"server","id":"stub"}')

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@contextmanager
def stub_gateway(workdir: Path) -> Iterator[tuple[str, str]]:
    """An HTTPS server answering 202 to every post; yields (url, CA file)."""
    from devstack.certs import ensure_dev_certificates

    certs = ensure_dev_certificates(workdir / "tls")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(certs.server_cert), str(certs.server_key))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stub)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://localhost:{server.server_address[1]}", str(certs.ca_cert)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def main() -> int:
    parser = argparse.ArgumentParser(description="Measure the scout-agent's RSS and CPU.")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--python", help=f"interpreter to run the agent (default {SYSTEM_PYTHON})")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="scout-agent-bench-") as tmp,
        stub_gateway(Path(tmp)) as (url, ca_file),
    ):
        result = measure(
            url,
            "ab" * 32,
            ca_file,
            Path(tmp) / "agent",
            duration=args.duration,
            interval=args.interval,
            python=args.python,
        )
    print(result.summary())
    print(f"posts answered by the stub: {_Stub.posts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
