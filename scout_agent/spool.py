"""The on-disk spool: every sample is written here first and deleted once the API accepted it.

One JSON file per collected sample, named by its time so a sorted listing is oldest first. A file
appears whole or not at all (written to a temporary name, fsynced, renamed, directory fsynced), so
a crash or power cut loses at most the sample being written, and a sample whose POST was answered
but not yet deleted is sent again: the API stores each (server, metric, time) once.

The spool is bounded: past `max_samples` the oldest are deleted, and the count of deleted samples
is kept in `state.json` (it survives restarts) so the agent reports it as a metric.
"""

from __future__ import annotations

import contextlib
import json
import os

from scout_agent.envfile import fsync_directory

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

STATE = "state.json"
SUFFIX = ".json"


class Entry:
    """One spooled sample: its file name, its API sample objects and its size in bytes."""

    __slots__ = ("name", "samples", "size")

    def __init__(self, name: str, samples: list[dict[str, Any]], size: int) -> None:
        self.name = name
        self.samples = samples
        self.size = size


class Spool:
    def __init__(self, directory: str, max_samples: int) -> None:
        self.directory = directory
        self.max_samples = max_samples
        self._sequence = 0
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for name in os.listdir(directory):
            if name.startswith(".tmp-"):  # left by a crash mid-write: never renamed, never sent
                self._remove(name)
        self._state = self._read_state()

    # ---- counters that survive restarts ------------------------------------------------------

    def _read_state(self) -> dict[str, int]:
        try:
            with open(os.path.join(self.directory, STATE), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            return {"dropped": 0, "rejected": 0}
        return {
            "dropped": int(data.get("dropped", 0)),
            "rejected": int(data.get("rejected", 0)),
        }

    def _write_state(self) -> None:
        self._write(STATE, json.dumps(self._state).encode())

    @property
    def dropped(self) -> int:
        """Samples deleted unsent because the spool was full, since the spool was created."""
        return self._state["dropped"]

    @property
    def rejected(self) -> int:
        """Samples the API refused as invalid (and that were therefore deleted)."""
        return self._state["rejected"]

    # ---- files ---------------------------------------------------------------------------------

    def _write(self, name: str, data: bytes) -> None:
        temporary = os.path.join(self.directory, f".tmp-{os.getpid()}-{name}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, os.path.join(self.directory, name))
        fsync_directory(self.directory)

    def names(self) -> list[str]:
        """The spooled samples, oldest first."""
        return sorted(
            name
            for name in os.listdir(self.directory)
            if name.endswith(SUFFIX) and name != STATE and not name.startswith(".")
        )

    def __len__(self) -> int:
        return len(self.names())

    def add(self, ts_ms: int, samples: list[dict[str, Any]]) -> list[str]:
        """Spool one collected sample (as API sample objects); returns the names of the oldest
        samples dropped to stay within the bound (already counted in `dropped`)."""
        self._sequence = (self._sequence + 1) % 1_000_000
        name = f"{ts_ms:015d}-{self._sequence:06d}{SUFFIX}"
        self._write(name, json.dumps(samples, separators=(",", ":")).encode())
        names = self.names()
        excess = len(names) - self.max_samples
        if excess <= 0:
            return []
        dropped = names[:excess]
        for old in dropped:
            self._remove(old)
        self._state["dropped"] += len(dropped)
        self._write_state()
        return dropped

    def _remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(self.directory, name))

    def read(self, names: list[str]) -> Iterator[Entry]:
        """The entries in `names` that are still there and readable; unreadable ones are
        deleted and counted as rejected (they could never be sent)."""
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as handle:
                    data = handle.read()
                samples = json.loads(data)
                if not isinstance(samples, list):
                    raise ValueError("not a list")
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                self.reject([name])
                continue
            yield Entry(name, samples, len(data))

    def delete(self, names: list[str]) -> None:
        """Remove samples the API accepted."""
        for name in names:
            self._remove(name)

    def reject(self, names: list[str]) -> None:
        for name in names:
            self._remove(name)
        self._state["rejected"] += len(names)
        self._write_state()
