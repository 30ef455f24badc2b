"""What a running `make run` leaves in the data folder, so the next one can find it.

`devstack.lock` is held (flock) for as long as the orchestrator runs: a second `make run` on the
same checkout cannot take it and reads `devstack.json` to say where the running stack is,
instead of fighting it for ports and data. The same file remembers every port for the next run
(so a saved scoutctl session and an agent's SCOUTURL keep working) and the replicas' pids, so
children left behind by an orchestrator that was killed are stopped before new ones start.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from devstack.jwt_keys import write_private

log = logging.getLogger("devstack")

LOCK_FILE = "devstack.lock"
STATE_FILE = "devstack.json"
# Modules a replica runs: a leftover pid is stopped only if it still runs one of them.
REPLICA_MODULES = ("gateway", "auth_service", "key_service", "ingest_service")


@dataclass
class StackState:
    pid: int = 0
    gateway_urls: list[str] = field(default_factory=list)
    metrics_urls: dict[str, str] = field(default_factory=dict)
    database_url: str = ""
    redis_url: str = ""
    redis_prefix: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)


def load_state(data_dir: Path) -> StackState:
    try:
        data = json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return StackState()
    if not isinstance(data, dict):
        return StackState()
    known = StackState.__dataclass_fields__
    try:
        return StackState(**{k: v for k, v in data.items() if k in known})
    except TypeError:
        return StackState()


def save_state(data_dir: Path, state: StackState) -> None:
    # Mode 0600: the database URL may carry a password.
    write_private(data_dir / STATE_FILE, json.dumps(asdict(state), indent=2) + "\n")


class AlreadyRunning(Exception):
    """Another orchestrator holds this data folder; `state` says where its stack is."""

    def __init__(self, state: StackState) -> None:
        self.state = state
        super().__init__(f"already running (pid {state.pid})")


@contextlib.contextmanager
def single_instance(data_dir: Path) -> Iterator[None]:
    """Hold the data folder's lock while the stack runs; AlreadyRunning if another does."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / LOCK_FILE).open("a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise AlreadyRunning(load_state(data_dir)) from None
        yield
    finally:
        handle.close()  # releases the lock


def _runs_a_replica(pid: int) -> bool:
    if sys.platform != "linux":
        return False  # without /proc, never signal a pid we cannot identify
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(
        argv[i] == b"-m" and argv[i + 1].decode(errors="replace") in REPLICA_MODULES
        for i in range(len(argv) - 1)
    )


def stop_leftover_children(state: StackState, wait: float = 10.0) -> list[str]:
    """SIGTERM the replicas an earlier, killed orchestrator left running (then SIGKILL)."""
    stopped = []
    for name, pid in state.children.items():
        if not _runs_a_replica(pid):
            continue
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
            stopped.append(name)
    deadline = time.monotonic() + wait
    for name in stopped:
        pid = state.children[name]
        while _runs_a_replica(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _runs_a_replica(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        log.info("stopped %s (pid %d), left running by an earlier run", name, pid)
    return stopped
