"""Load generation: N keep-alive HTTPS connections for a fixed time, one request in flight each.

Two generators with the same contract: `wrk` when it is installed (C, cheapest per request) and an
asyncio client otherwise. The asyncio client writes prebuilt request bytes and parses responses
with a few byte searches (no header objects, no cookie jar), so on a small machine it costs less
CPU per request than the servers it drives; its own CPU use is reported so a client-bound figure
can be recognised.
"""

from __future__ import annotations

import asyncio
import functools
import math
import re
import resource
import shutil
import ssl
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.processes import CLOCK_TICKS, ServerProcess

# Placeholder in a body template, replaced per request by a unique unix timestamp (agents post
# fresh samples; a repeated body would be answered by the ingest service's duplicate detection).
TS_PLACEHOLDER = "{ts}"
_TS_STEP = 1e-5


@dataclass(frozen=True)
class RequestSpec:
    method: str
    path: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body_template: str | None = None
    expect_status: int = 200


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    # CPU seconds used during the measured window, by process name ("client" is the generator).
    cpu_seconds: Mapping[str, float]
    # The failed requests by what they were ("HTTP 503", "connection lost", ...), so a run with
    # errors says why.
    error_kinds: Mapping[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def cpu_ms_per_request(self) -> dict[str, float]:
        if not self.requests:
            return {}
        return {name: 1000 * cpu / self.requests for name, cpu in self.cpu_seconds.items()}

    @classmethod
    def combined(cls, windows: Sequence[LoadResult]) -> LoadResult:
        """Several measured windows of one request as one result: counts, seconds and CPU added
        up. Their percentiles cannot be merged exactly: the result keeps the median of the
        windows' p50s and the highest p99 (never flattering the tail)."""
        if not windows:
            raise ValueError("no windows to combine")
        cpu: dict[str, float] = {}
        kinds: Counter[str] = Counter()
        for window in windows:
            for name, seconds in window.cpu_seconds.items():
                cpu[name] = cpu.get(name, 0.0) + seconds
            kinds.update(window.error_kinds)
        return cls(
            requests=sum(w.requests for w in windows),
            seconds=sum(w.seconds for w in windows),
            p50_ms=statistics.median(w.p50_ms for w in windows),
            p99_ms=max(w.p99_ms for w in windows),
            cpu_seconds=cpu,
            error_kinds=dict(kinds),
        )


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of unsorted values (0 for none)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def _machine_busy_seconds() -> float | None:
    """CPU seconds all cores of the machine spent busy so far (Linux /proc/stat), else None."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def _cpu_snapshot(processes: Sequence[ServerProcess]) -> dict[str, float]:
    """CPU seconds used so far by each watched process, and by the whole machine ("machine")."""
    snapshot = {}
    machine = _machine_busy_seconds()
    if machine is not None:
        snapshot["machine"] = machine
    for process in processes:
        seconds = process.cpu_seconds()
        if seconds is not None:
            snapshot[process.name] = seconds
    return snapshot


def _cpu_delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before if name in after}


class _Body:
    def __init__(self, template: str | None) -> None:
        self._template = template
        self._base = time.time() - 60.0
        self._count = 0

    def next(self) -> bytes:
        if self._template is None:
            return b""
        self._count += 1
        ts = f"{self._base + self._count * _TS_STEP:.6f}"
        return self._template.replace(TS_PLACEHOLDER, ts).encode()


class _Run:
    """State shared by the asyncio client's connections."""

    def __init__(self, spec: RequestSpec, port: int) -> None:
        lines = [f"{spec.method} {spec.path} HTTP/1.1", f"Host: localhost:{port}"]
        lines += [f"{name}: {value}" for name, value in spec.headers.items()]
        self._head = "\r\n".join(lines).encode()
        self._body = _Body(spec.body_template)
        self._has_body = spec.body_template is not None
        self.expect = spec.expect_status
        self.measuring = False
        self.stopping = False
        self.latencies: list[float] = []
        self.error_kinds: Counter[str] = Counter()

    def error(self, kind: str) -> None:
        if self.measuring:
            self.error_kinds[kind] += 1

    def next_request(self) -> bytes:
        if not self._has_body:
            return self._head + b"\r\n\r\n"
        body = self._body.next()
        return b"%s\r\nContent-Length: %d\r\n\r\n%s" % (self._head, len(body), body)

    def record(self, status: int, started: float, finished: float) -> None:
        if not self.measuring:
            return
        if status == self.expect:
            self.latencies.append(finished - started)
        else:
            self.error_kinds[f"HTTP {status}"] += 1


def _complete_response(buffer: bytearray) -> tuple[int, int] | None:
    """(status, length) of the HTTP/1.1 response at the start of `buffer` once all of it has
    arrived, else None: a few byte searches, no header objects."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buffer[:end]).lower()
    start = head.find(b"\r\ncontent-length:")
    if start >= 0:
        stop = head.find(b"\r\n", start + 2)
        length = int(head[start + 17 : stop if stop >= 0 else len(head)])
        total = end + 4 + length
        if len(buffer) < total:
            return None
    else:  # chunked (small bodies only): wait for the last chunk
        last = buffer.find(b"0\r\n\r\n", end + 4)
        if last < 0:
            return None
        total = last + 5
    return int(head[9:12]), total


class _Connection(asyncio.Protocol):
    def __init__(self, run: _Run, closed: asyncio.Future[None]) -> None:
        self._run = run
        self._closed = closed
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._started = 0.0
        self._in_flight = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._send()

    def _send(self) -> None:
        assert self._transport is not None
        if self._run.stopping:
            self._transport.close()
            return
        self._in_flight = True
        self._started = time.perf_counter()
        self._transport.write(self._run.next_request())

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        framed = _complete_response(self._buffer)
        if framed is None:
            return
        finished = time.perf_counter()
        self._in_flight = False
        status, total = framed
        self._run.record(status, self._started, finished)
        del self._buffer[:total]
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._in_flight:
            self._run.error("connection lost")
        if not self._closed.done():
            self._closed.set_result(None)


async def _drive_connection(run: _Run, port: int, context: ssl.SSLContext) -> None:
    loop = asyncio.get_running_loop()
    while not run.stopping:
        closed: asyncio.Future[None] = loop.create_future()
        try:
            await loop.create_connection(
                functools.partial(_Connection, run, closed),
                "127.0.0.1",
                port,
                ssl=context,
                server_hostname="localhost",
            )
        except OSError:
            run.error("connect failed")
            await asyncio.sleep(0.05)
            continue
        await closed


async def python_load(
    target: ServerProcess,
    spec: RequestSpec,
    *,
    context: ssl.SSLContext,
    connections: int,
    duration: float,
    warmup: float,
    watch: Sequence[ServerProcess] = (),
) -> LoadResult:
    run = _Run(spec, target.port)
    drivers = [
        asyncio.create_task(_drive_connection(run, target.port, context))
        for _ in range(connections)
    ]
    try:
        await asyncio.sleep(warmup)
        cpu_before = _cpu_snapshot(watch)
        client_before = time.process_time()
        run.measuring = True
        started = time.perf_counter()
        await asyncio.sleep(duration)
        run.stopping = True
        seconds = time.perf_counter() - started
        run.measuring = False
        cpu = _cpu_delta(cpu_before, _cpu_snapshot(watch))
        cpu["client"] = time.process_time() - client_before
        await asyncio.wait_for(asyncio.gather(*drivers), timeout=30)
    finally:
        run.stopping = True
        for task in drivers:
            task.cancel()
        await asyncio.gather(*drivers, return_exceptions=True)
    return LoadResult(
        requests=len(run.latencies),
        seconds=seconds,
        p50_ms=1000 * percentile(run.latencies, 0.50),
        p99_ms=1000 * percentile(run.latencies, 0.99),
        cpu_seconds=cpu,
        error_kinds=dict(run.error_kinds),
    )


class _ProbeProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, float]] | None = None
        self._buffer = bytearray()
        # False once the connection is lost or the server said it closes after its answer.
        self.usable = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        framed = _complete_response(self._buffer)
        if framed is None:
            return
        finished = time.perf_counter()
        status, total = framed
        # The server closes after this answer: the next request must not be written to it.
        if b"\r\nconnection: close" in bytes(self._buffer[:total]).lower():
            self.usable = False
        del self._buffer[:total]
        if self.answer is not None and not self.answer.done():
            self.answer.set_result((status, finished))

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(ConnectionError("the server closed the connection"))


class Prober:
    """Single requests to one server on a keep-alive HTTPS connection, for latencies measured
    one request at a time (rotation -> rejection): the load client's prebuilt bytes and byte
    searches instead of a client library, so what a probe measures is the server and the
    network, at about what wrk would cost. The time is taken when the last byte arrives."""

    def __init__(self, port: int, context: ssl.SSLContext) -> None:
        self._port = port
        self._context = context
        self._protocol: _ProbeProtocol | None = None

    async def _connected(self) -> _ProbeProtocol:
        if self._protocol is not None and self._protocol.usable:
            return self._protocol
        self.close()
        _, protocol = await asyncio.get_running_loop().create_connection(
            _ProbeProtocol, "127.0.0.1", self._port, ssl=self._context, server_hostname="localhost"
        )
        self._protocol = protocol
        return protocol

    async def get(self, path: str, headers: Mapping[str, str]) -> tuple[int, float]:
        """GET `path`: (status, perf_counter when the answer was complete). A connection the
        server closed is opened again first (its handshake then counts)."""
        protocol = await self._connected()
        assert protocol.transport is not None
        lines = [f"GET {path} HTTP/1.1", f"Host: localhost:{self._port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        protocol.answer = asyncio.get_running_loop().create_future()
        protocol.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        return await asyncio.wait_for(protocol.answer, timeout=10)

    def close(self) -> None:
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.close()
        self._protocol = None


# ---- wrk ---------------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _lua_string(text: str) -> str:
    """A double-quoted Lua string literal (decimal escapes for anything unusual)."""
    escaped = "".join(
        char
        if char.isascii() and char.isprintable() and char not in '"\\'
        else "".join(f"\\{byte:03d}" for byte in char.encode())
        for char in text
    )
    return f'"{escaped}"'


def wrk_script(spec: RequestSpec, ts_base: float) -> str:
    lines = [f"wrk.method = {_lua_string(spec.method)}"]
    lines += [
        f"wrk.headers[{_lua_string(name)}] = {_lua_string(value)}"
        for name, value in spec.headers.items()
    ]
    if spec.body_template is not None:
        prefix, _, suffix = spec.body_template.partition(TS_PLACEHOLDER)
        lines += [
            "local n = 0",
            "request = function()",
            "  n = n + 1",
            f"  local ts = string.format('%.6f', {ts_base!r} + n * {_TS_STEP!r})",
            f"  return wrk.format(nil, nil, nil, {_lua_string(prefix)} .. ts .. "
            f"{_lua_string(suffix)})",
            "end",
        ]
    return "\n".join(lines) + "\n"


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if match is None:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class WrkOutput:
    requests: int
    seconds: float
    error_kinds: Mapping[str, int]
    p50_ms: float
    p99_ms: float

    @property
    def errors(self) -> int:
        return sum(self.error_kinds.values())


def parse_wrk(output: str) -> WrkOutput:
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    p50 = re.search(r"^\s*50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", output, re.MULTILINE)
    if total is None or p50 is None or p99 is None:
        raise ValueError(f"cannot read wrk's output:\n{output}")
    kinds: dict[str, int] = {}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        kinds["non-2xx or 3xx"] = int(non_2xx.group(1))
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    if sockets:
        for name, count in zip(
            ("connect", "read", "write", "timeout"), sockets.groups(), strict=True
        ):
            if int(count):
                kinds[f"socket {name}"] = int(count)
    seconds = float(total.group(2)) * _UNITS[total.group(3)] / 1000
    return WrkOutput(
        requests=int(total.group(1)),
        seconds=seconds,
        error_kinds=kinds,
        p50_ms=_wrk_ms(p50.group(1)),
        p99_ms=_wrk_ms(p99.group(1)),
    )


async def _run_wrk(
    target: ServerProcess, spec: RequestSpec, script: Path, connections: int, seconds: int
) -> str:
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk is not on PATH")
    await asyncio.to_thread(script.write_text, wrk_script(spec, time.time() - 60.0))
    process = await asyncio.create_subprocess_exec(
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        target.url + spec.path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    text = output.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}")
    return text


async def wrk_load(
    target: ServerProcess,
    spec: RequestSpec,
    *,
    workdir: Path,
    connections: int,
    duration: float,
    warmup: float,
    watch: Sequence[ServerProcess] = (),
) -> LoadResult:
    script = workdir / "wrk-request.lua"
    if warmup > 0:
        # Each run starts its timestamps from the time it starts: runs never repeat samples.
        await _run_wrk(target, spec, script, connections, 1)
    cpu_before = _cpu_snapshot(watch)
    client_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    text = await _run_wrk(target, spec, script, connections, max(1, round(duration)))
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = _cpu_delta(cpu_before, _cpu_snapshot(watch))
    cpu["client"] = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    parsed = parse_wrk(text)
    return LoadResult(
        requests=parsed.requests - parsed.errors,
        seconds=parsed.seconds,
        p50_ms=parsed.p50_ms,
        p99_ms=parsed.p99_ms,
        cpu_seconds=cpu,
        error_kinds=parsed.error_kinds,
    )
