"""Child processes of the dev stack: started with their output prefixed by name, watched, and
stopped with SIGTERM (then SIGKILL after a timeout)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

log = logging.getLogger("devstack")

# A replica that exits is started again after RESTART_DELAY seconds, doubling up to
# RESTART_DELAY_MAX while it keeps failing; one that ran STABLE_AFTER seconds starts over.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
STABLE_AFTER = 60.0
# Long JSON log lines must not break the reader (asyncio's default line limit is 64 KiB).
_LINE_LIMIT = 1024 * 1024
_COLORS = ("36", "33", "35", "32", "34", "91", "96", "93", "95", "92")


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str]


class ChildExited(Exception):
    """A child stopped while it should have been running."""

    def __init__(self, name: str, returncode: int) -> None:
        self.name = name
        self.returncode = returncode
        super().__init__(f"{name} exited unexpectedly ({describe_exit(returncode)})")


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


class LogPrinter:
    """Writes each child's output lines as `name | line`, names aligned (and coloured on a
    terminal unless NO_COLOR is set)."""

    def __init__(self, out: TextIO, *, width: int = 10, color: bool = False) -> None:
        self._out = out
        self._width = width
        self._color = color
        self._assigned: dict[str, str] = {}

    def widen(self, names: Sequence[str]) -> None:
        self._width = max([self._width, *(len(n) for n in names)])

    def prefix(self, name: str) -> str:
        label = f"{name:<{self._width}} |"
        if not self._color:
            return label
        code = self._assigned.setdefault(name, _COLORS[len(self._assigned) % len(_COLORS)])
        return f"\033[{code}m{label}\033[0m"

    def line(self, name: str, text: str) -> None:
        self._out.write(f"{self.prefix(name)} {text}\n")
        self._out.flush()


class Child:
    def __init__(self, spec: ProcessSpec, process: asyncio.subprocess.Process, printer: LogPrinter):
        self.spec = spec
        self.process = process
        self._pump = asyncio.create_task(self._copy_output(printer), name=f"{spec.name}-output")

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def ensure_running(self) -> None:
        """Raise ChildExited if the process has stopped."""
        if self.process.returncode is not None:
            raise ChildExited(self.name, self.process.returncode)

    async def wait(self) -> int:
        code = await self.process.wait()
        await self._pump  # the last lines it wrote say why it stopped
        return code

    async def stop(self, kill_after: float) -> int:
        """SIGTERM, then SIGKILL if it has not exited within `kill_after` seconds."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(kill_after):  # not wait_for: see scout_kit.tasks
                    await self.process.wait()
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
        return await self.wait()

    async def _copy_output(self, printer: LogPrinter) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            try:
                raw = await stream.readline()
            except ValueError:  # a line longer than the limit: print what was buffered
                raw = await stream.read(_LINE_LIMIT)
            if not raw:
                return
            printer.line(self.name, raw.decode("utf-8", "replace").rstrip("\r\n"))


class Supervisor:
    """Starts children in waves and stops them in reverse: the gateways before the services they
    call, so no request is cut off half-way through the stack. While it supervises, a child
    that exits is logged and started again with backoff; the others keep running."""

    def __init__(
        self,
        printer: LogPrinter,
        *,
        restart_delay: float = RESTART_DELAY,
        on_restart: Callable[[Child], None] | None = None,
    ) -> None:
        self._printer = printer
        self._waves: list[list[Child]] = []
        self._stopping = asyncio.Event()
        self._restart_delay = restart_delay
        self._on_restart = on_restart
        self.restarts = 0

    @property
    def children(self) -> list[Child]:
        return [child for wave in self._waves for child in wave]

    async def start_wave(self, specs: Sequence[ProcessSpec]) -> list[Child]:
        self._printer.widen([spec.name for spec in specs])
        wave: list[Child] = []
        self._waves.append(wave)
        for spec in specs:
            wave.append(await start_child(spec, self._printer))
        return wave

    async def first_exit(self) -> Child:
        """Wait until any child exits and return it."""
        waiters = {asyncio.ensure_future(child.wait()): child for child in self.children}
        if not waiters:
            raise RuntimeError("no children to watch")
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
        return waiters[next(iter(done))]

    async def supervise(self) -> None:
        """Keep every child running until cancelled or stopped."""
        loop = asyncio.get_running_loop()
        watchers = [
            loop.create_task(self._keep_alive(wave, index), name=f"keep-{child.name}-alive")
            for wave in self._waves
            for index, child in enumerate(wave)
        ]
        try:
            await asyncio.gather(*watchers)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)

    async def _keep_alive(self, wave: list[Child], index: int) -> None:
        loop = asyncio.get_running_loop()
        delay = self._restart_delay
        while not self._stopping.is_set():
            child = wave[index]
            started = loop.time()
            code = await child.wait()
            if self._stopping.is_set():
                return
            if loop.time() - started >= STABLE_AFTER:
                delay = self._restart_delay
            self.restarts += 1
            log.warning(
                "%s stopped unexpectedly (%s); restarting it in %.0fs (restart %d)",
                child.name, describe_exit(code), delay, self.restarts,
            )  # fmt: skip
            await asyncio.sleep(delay)
            delay = min(delay * 2, RESTART_DELAY_MAX)
            if self._stopping.is_set():
                return
            wave[index] = await start_child(child.spec, self._printer)
            log.info("%s restarted (pid %d)", child.name, wave[index].pid)
            if self._on_restart is not None:
                self._on_restart(wave[index])

    async def stop_all(self, kill_after: float) -> None:
        self._stopping.set()
        while self._waves:
            wave = self._waves.pop()
            await asyncio.gather(*(child.stop(kill_after) for child in wave))


async def start_child(spec: ProcessSpec, printer: LogPrinter) -> Child:
    """Start `spec` with stdout and stderr merged into the printer.

    The child gets its own process group, so a Ctrl-C on the terminal reaches only the
    orchestrator, which then stops everything in order."""
    process = await asyncio.create_subprocess_exec(
        *spec.argv,
        env=dict(spec.env),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        limit=_LINE_LIMIT,
        process_group=0,
    )
    return Child(spec, process, printer)


def terminal_printer(environ: Mapping[str, str]) -> LogPrinter:
    """A printer on stdout, coloured when stdout is a terminal and NO_COLOR is not set."""
    return LogPrinter(sys.stdout, color=sys.stdout.isatty() and not environ.get("NO_COLOR"))
