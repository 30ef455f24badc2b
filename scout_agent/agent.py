"""The agent's loop: collect into the spool every interval, send the spool oldest first.

Every sample is spooled before it is sent and deleted only once the API answered 202, so an
outage, a 5xx, a 429 or a rejected key only delays it. Sending backs off exponentially with
jitter (honouring Retry-After) while collection keeps its rhythm. The env file is polled every
cycle (and reread on SIGHUP): a new key, URL or CA is used from the next send, without a restart.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time

from scout_agent import config as config_module
from scout_agent.collect import Collector, Metrics
from scout_agent.config import Config, ConfigError
from scout_agent.spool import Spool
from scout_agent.transport import INVALID, KEY_REJECTED, OK, Gateway, Result

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs memory at run time; the agent's budget is 20 MB
    from collections.abc import Callable
    from typing import Any, TextIO

MAX_METRICS_PER_SAMPLE = 500
MAX_SAMPLES_PER_POST = 100
MAX_POST_BYTES = 512 * 1024
BACKOFF_BASE = 1.0

# Exit statuses, shared by `run`, `--once` and `check`.
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONFIG = 3
EXIT_UNREACHABLE = 4
EXIT_KEY_REJECTED = 5


class Log:
    """Plain lines on stderr (journald adds the time): `logging` would cost memory for nothing."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def __call__(self, level: str, message: str) -> None:
        stream = self.stream if self.stream is not None else sys.stderr
        stream.write(f"scout-agent: {level}: {message}\n")
        stream.flush()


def jitter() -> float:
    """A uniform number in [0, 1] (`random` would load more modules than this needs)."""
    return int.from_bytes(os.urandom(2), "big") / 0xFFFF


def rfc3339(ts_ms: int) -> str:
    seconds, millis = divmod(ts_ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def to_samples(ts_ms: int, metrics: Metrics) -> list[dict[str, Any]]:
    """API sample objects for one collection: split when over the API's metrics-per-sample limit
    (the parts share the time; (metric, time) stays unique)."""
    names = sorted(metrics)
    stamp = rfc3339(ts_ms)
    return [
        {
            "ts": stamp,
            "metrics": {name: metrics[name] for name in names[i : i + MAX_METRICS_PER_SAMPLE]},
        }
        for i in range(0, max(len(names), 1), MAX_METRICS_PER_SAMPLE)
    ]


class Agent:
    def __init__(
        self,
        env_file: str,
        *,
        log: Log | None = None,
        euid: int | None = None,
        collector: Collector | None = None,
        observer: Callable[[int, Metrics], None] | None = None,
    ) -> None:
        self.env_file = env_file
        self.log = log or Log()
        self._euid = os.geteuid() if euid is None else euid
        self.config: Config = config_module.load(env_file, self._euid)
        self.spool = Spool(self.config.spool_dir, self.config.spool_max)
        self.gateway = Gateway(self.config.url, self.config.ca_file)
        self.collector = collector or Collector()
        self.observer = observer
        self._failures = 0
        self._next_send = 0.0
        self._rejected_key: str | None = None
        self._refused_identity: tuple[int, int, int, int] | None = None
        self._unreported_drops = 0
        self._stopping = False
        self._reload_requested = False
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

    # ---- control, callable from a signal handler or another thread ----------------------------

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def request_reload(self) -> None:
        self._reload_requested = True
        self._wake()

    def _wake(self) -> None:
        # A full pipe means it is already awake; a closed one that it is closing.
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"\0")

    def close(self) -> None:
        self.gateway.close()
        for fd in (self._wake_read, self._wake_write):
            with contextlib.suppress(OSError):
                os.close(fd)

    # ---- the loop -----------------------------------------------------------------------------

    def run(self, once: bool = False) -> int:
        config = self.config
        self.log(
            "info",
            f"started: sending to {config.url} every {config.interval:g}s with key "
            f"{config.key_hint} from {config.env_file}; spool {config.spool_dir} "
            f"({len(self.spool)} waiting, bound {config.spool_max})",
        )
        for name in config.unknown:
            self.log("warning", f"{config.env_file}: unknown setting {name} ignored")
        if once:
            # Rates need two readings: the collector's first one was taken when it was made.
            self._sleep(min(config.interval, 1.0))
            self._collect()
            self._send()
            return self._once_status()
        next_collect = time.monotonic() + self.config.interval
        while not self._stopping:
            self._maybe_reload()
            now = time.monotonic()
            if now >= next_collect:
                self._collect()
                next_collect += self.config.interval
                if next_collect <= now:  # the machine was suspended or we fell behind
                    next_collect = now + self.config.interval
            if time.monotonic() >= self._next_send:
                self._send(deadline=next_collect)
            now = time.monotonic()
            # A retry deadline in the future shortens the wait; otherwise the next collection
            # is the next thing to do (an empty spool leaves _next_send in the past).
            wake = min(next_collect, self._next_send) if self._next_send > now else next_collect
            self._sleep(max(0.0, wake - now))
        self.log("info", f"stopping; {len(self.spool)} samples wait in the spool")
        return EXIT_OK

    def _once_status(self) -> int:
        if not len(self.spool):
            return EXIT_OK
        if self._rejected_key is not None:
            return EXIT_KEY_REJECTED
        return EXIT_UNREACHABLE

    def _sleep(self, seconds: float) -> None:
        if self._stopping or self._reload_requested:
            return
        readable, _, _ = select.select([self._wake_read], [], [], seconds)
        if readable:
            with contextlib.suppress(BlockingIOError):
                os.read(self._wake_read, 512)

    # ---- configuration changes ------------------------------------------------------------------

    def _maybe_reload(self) -> None:
        requested = self._reload_requested
        self._reload_requested = False
        identity = config_module.file_identity(self.env_file)
        if not requested and (identity == self.config.identity or identity is None):
            return
        if not requested and identity == self._refused_identity:
            return
        try:
            new = config_module.load(self.env_file, self._euid)
        except ConfigError as exc:
            self._refused_identity = identity
            self.log("error", f"not reloading {self.env_file}, keeping the running settings: {exc}")
            return
        old = self.config
        self.config = new
        self._refused_identity = None
        if (new.url, new.ca_file) != (old.url, old.ca_file):
            self.gateway.close()
            self.gateway = Gateway(new.url, new.ca_file)
        if (new.spool_dir, new.spool_max) != (old.spool_dir, old.spool_max):
            self.spool = Spool(new.spool_dir, new.spool_max)
        changes = [
            label
            for label, changed in (
                (f"key {old.key_hint} -> {new.key_hint}", new.api_key != old.api_key),
                (f"URL {new.url}", new.url != old.url),
                (f"interval {new.interval:g}s", new.interval != old.interval),
            )
            if changed
        ]
        self.log(
            "info", f"reloaded {self.env_file}" + (f": {', '.join(changes)}" if changes else "")
        )
        if new.api_key != self._rejected_key or changes:
            self._rejected_key = None
            self._failures = 0
            self._next_send = 0.0  # send what waits now, with the new settings

    # ---- collecting ---------------------------------------------------------------------------

    def _collect(self) -> None:
        ts_ms = int(time.time() * 1000)
        metrics = self.collector.collect()
        metrics["scout.agent.spool_dropped"] = self.spool.dropped
        metrics["scout.agent.spool_rejected"] = self.spool.rejected
        metrics["scout.agent.spool_depth"] = len(self.spool)
        try:
            dropped = self.spool.add(ts_ms, to_samples(ts_ms, metrics))
        except OSError as exc:
            self.log("error", f"cannot write to the spool {self.spool.directory}: {exc}")
            return
        if self.observer is not None:
            self.observer(ts_ms, metrics)
        if dropped:
            self._unreported_drops += len(dropped)
            self.log(
                "warning",
                f"spool full ({self.spool.max_samples} samples): dropped the oldest "
                f"{len(dropped)} unsent sample(s); {self.spool.dropped} dropped in total, "
                "reported as scout.agent.spool_dropped",
            )

    # ---- sending ------------------------------------------------------------------------------

    def _send(self, deadline: float | None = None) -> None:
        """Send the spool oldest first until it is empty, a send fails, or the next collection
        is due (the rest follows right after it)."""
        while not self._stopping:
            names = self.spool.names()
            if not names:
                return
            batch, samples = self._batch(names)
            if not batch:
                continue  # unreadable files were set aside; look again
            result = self.gateway.post_samples(self.config.api_key, samples)
            if result.outcome == OK:
                self.spool.delete(batch)
                self._on_success(len(batch))
            elif result.outcome == INVALID:
                if not self._on_invalid(batch, result):
                    return
            elif not self._on_failure(result):
                return
            if deadline is not None and time.monotonic() >= deadline:
                self._next_send = 0.0
                return

    def _batch(self, names: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
        batch: list[str] = []
        samples: list[dict[str, Any]] = []
        size = 0
        for entry in self.spool.read(names[:MAX_SAMPLES_PER_POST]):
            if batch and size + entry.size > MAX_POST_BYTES:
                break
            batch.append(entry.name)
            samples.extend(entry.samples)
            size += entry.size
        return batch, samples

    def _on_success(self, count: int) -> None:
        if self._failures or self._rejected_key is not None:
            self.log("info", f"sending again: {count} sample(s) delivered, {len(self.spool)} left")
        if self._unreported_drops:
            self.log(
                "warning",
                f"{self._unreported_drops} sample(s) were dropped unsent while the spool was full "
                f"({self.spool.dropped} in total since the spool was created)",
            )
            self._unreported_drops = 0
        self._failures = 0
        self._rejected_key = None
        self._next_send = 0.0

    def _on_failure(self, result: Result) -> bool:
        """Handle an answer that keeps the samples; False: stop sending for now."""
        if result.outcome == KEY_REJECTED:
            self._on_key_rejected(result)
        else:
            self._on_retry(result)
        return False

    def _on_invalid(self, batch: list[str], result: Result) -> bool:
        """Set aside what the API will never accept; False when sending must pause."""
        if len(batch) == 1:
            self._reject(batch[0], result)
            return True
        # One bad sample must not hold back the others: send them one by one to find it.
        for entry in self.spool.read(batch):
            single = self.gateway.post_samples(self.config.api_key, entry.samples)
            if single.outcome == OK:
                self.spool.delete([entry.name])
            elif single.outcome == INVALID:
                self._reject(entry.name, single)
            else:
                return self._on_failure(single)
        return True

    def _reject(self, name: str, result: Result) -> None:
        self.spool.reject([name])
        self.log(
            "error",
            f"the API refused sample {name} ({result.describe()}); it was deleted and is "
            "counted in scout.agent.spool_rejected",
        )

    def _on_key_rejected(self, result: Result) -> None:
        config = self.config
        if self._rejected_key != config.api_key:
            self.log(
                "error",
                f"the API key {config.key_hint} was rejected ({result.describe()}). Put the "
                f"server's current key in SCOUTAPIKEY in {config.env_file} (one command: "
                f"scoutctl key rotate SERVER --update-env {config.env_file}); the agent picks it "
                "up without a restart. Samples are kept in the spool until then.",
            )
        self._rejected_key = config.api_key
        # Retried now and then anyway (a grace window or a restored key), never hammered.
        self._next_send = time.monotonic() + config.max_backoff

    def _on_retry(self, result: Result) -> None:
        self._failures += 1
        ceiling = min(self.config.max_backoff, BACKOFF_BASE * 2 ** min(self._failures - 1, 30))
        delay = ceiling * (0.5 + 0.5 * jitter())  # spread agents that failed together
        if result.retry_after is not None:
            delay = max(delay, result.retry_after)
        self._next_send = time.monotonic() + delay
        if self._failures == 1 or self._failures % 10 == 0:
            self.log(
                "warning",
                f"cannot send ({result.describe()}); {len(self.spool)} sample(s) kept in the "
                f"spool, retrying in {delay:.1f}s (attempt {self._failures})",
            )
