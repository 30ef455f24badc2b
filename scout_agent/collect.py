"""What the agent measures, read from /proc and statvfs, with metric names the API accepts.

Rates (CPU percentages, network bytes per second) come from the difference between two readings,
so a `Collector` keeps the previous one. Each reading is a few small file reads: no process is
spawned, nothing is imported beyond the standard library.
"""

from __future__ import annotations

import os
import re
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

PROC = "/proc"
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
# Filesystems that hold no data of their own (or are in memory), skipped for disk usage. Network
# filesystems are skipped too: statvfs on a hung NFS server would block the agent.
PSEUDO_FILESYSTEMS = frozenset(
    (
        "autofs",
        "binfmt_misc",
        "bpf",
        "cgroup",
        "cgroup2",
        "configfs",
        "debugfs",
        "devpts",
        "devtmpfs",
        "efivarfs",
        "fusectl",
        "hugetlbfs",
        "mqueue",
        "nsfs",
        "proc",
        "pstore",
        "ramfs",
        "rpc_pipefs",
        "securityfs",
        "selinuxfs",
        "squashfs",
        "sysfs",
        "tmpfs",
        "tracefs",
    )
)
NETWORK_FILESYSTEMS = frozenset(
    ("nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "fuse.sshfs", "afs")
)
_UNSAFE = re.compile(r"[^A-Za-z0-9_:/-]")
_OCTAL = re.compile(r"\\([0-7]{3})")
MAX_NAME = 200

Metrics = dict[str, float]


def metric_part(text: str) -> str:
    """A fragment of a metric name: characters outside [A-Za-z0-9_:/-] become `_` (dots too, as
    they separate the parts of a name)."""
    return _UNSAFE.sub("_", text)[:120] or "_"


def _read(path: str) -> str:
    with open(path, encoding="ascii", errors="replace") as handle:
        return handle.read()


def read_cpu(proc: str = PROC) -> list[int]:
    for line in _read(f"{proc}/stat").splitlines():
        if line.startswith("cpu "):
            fields = [int(x) for x in line.split()[1:9]]
            return fields + [0] * (8 - len(fields))
    return [0] * 8


def cpu_percentages(before: list[int], after: list[int]) -> Metrics:
    deltas = [max(b - a, 0) for a, b in zip(before, after)]  # noqa: B905 - both have 8 fields
    total = sum(deltas)
    if total <= 0:
        return {}
    result = {f"cpu.{mode}": round(100.0 * d / total, 2) for mode, d in zip(CPU_MODES, deltas)}  # noqa: B905
    busy = total - deltas[3] - deltas[4]
    result["cpu.percent"] = round(100.0 * busy / total, 2)
    return result


def read_network(proc: str = PROC) -> dict[str, tuple[int, int]]:
    counters: dict[str, tuple[int, int]] = {}
    for line in _read(f"{proc}/net/dev").splitlines()[2:]:
        name, _, rest = line.partition(":")
        fields = rest.split()
        name = name.strip()
        if len(fields) < 9 or name == "lo":
            continue
        counters[name] = (int(fields[0]), int(fields[8]))
    return counters


def network_rates(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]], seconds: float
) -> Metrics:
    result: Metrics = {}
    if seconds <= 0:
        return result
    for name, (rx, tx) in after.items():
        previous = before.get(name)
        if previous is None or rx < previous[0] or tx < previous[1]:
            continue  # new interface or counters reset: no rate this time
        part = metric_part(name)
        result[f"net.{part}.rx_bytes_per_s"] = round((rx - previous[0]) / seconds, 1)
        result[f"net.{part}.tx_bytes_per_s"] = round((tx - previous[1]) / seconds, 1)
    return result


def load_average(proc: str = PROC) -> Metrics:
    fields = _read(f"{proc}/loadavg").split()
    return {"load.1": float(fields[0]), "load.5": float(fields[1]), "load.15": float(fields[2])}


def memory(proc: str = PROC) -> Metrics:
    info: dict[str, int] = {}
    for line in _read(f"{proc}/meminfo").splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if parts:
            info[name] = int(parts[0]) * 1024
    total = info.get("MemTotal", 0)
    available = info.get("MemAvailable", info.get("MemFree", 0))
    result: Metrics = {
        "mem.total_bytes": total,
        "mem.available_bytes": available,
        "mem.used_bytes": total - available,
        "mem.free_bytes": info.get("MemFree", 0),
        "mem.buffers_bytes": info.get("Buffers", 0),
        "mem.cached_bytes": info.get("Cached", 0),
        "mem.used_percent": round(100.0 * (total - available) / total, 2) if total else 0.0,
    }
    swap_total = info.get("SwapTotal", 0)
    swap_used = swap_total - info.get("SwapFree", 0)
    result["swap.total_bytes"] = swap_total
    result["swap.used_bytes"] = swap_used
    result["swap.free_bytes"] = swap_total - swap_used
    result["swap.used_percent"] = round(100.0 * swap_used / swap_total, 2) if swap_total else 0.0
    return result


def uptime(proc: str = PROC) -> Metrics:
    return {"uptime.seconds": float(_read(f"{proc}/uptime").split()[0])}


def processes(proc: str = PROC) -> Metrics:
    count = sum(1 for name in os.listdir(proc) if name.isdigit())
    result: Metrics = {"proc.count": count}
    for line in _read(f"{proc}/stat").splitlines():
        if line.startswith("procs_running "):
            result["proc.running"] = int(line.split()[1])
        elif line.startswith("procs_blocked "):
            result["proc.blocked"] = int(line.split()[1])
    return result


def mount_points(proc: str = PROC) -> Iterator[tuple[str, str]]:
    """(mount point, filesystem type) of each mount that holds data of its own."""
    for line in _read(f"{proc}/mounts").splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        fstype = fields[2]
        if fstype in PSEUDO_FILESYSTEMS or fstype in NETWORK_FILESYSTEMS:
            continue
        yield _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), fields[1]), fstype


def disk_label(mount_point: str) -> str:
    return "root" if mount_point == "/" else metric_part(mount_point.strip("/"))


def disks(proc: str = PROC) -> Metrics:
    result: Metrics = {}
    seen: set[int] = set()
    for mount_point, _ in mount_points(proc):
        try:
            device = os.stat(mount_point).st_dev
            if device in seen:
                continue  # a bind mount (or the same filesystem again): counted once
            usage = os.statvfs(mount_point)
        except OSError:
            continue
        seen.add(device)
        if usage.f_blocks == 0:
            continue
        size = usage.f_frsize
        total = usage.f_blocks * size
        free = usage.f_bavail * size
        used = (usage.f_blocks - usage.f_bfree) * size
        prefix = f"disk.{disk_label(mount_point)}"
        result[f"{prefix}.total_bytes"] = total
        result[f"{prefix}.used_bytes"] = used
        result[f"{prefix}.free_bytes"] = free
        # As df shows it: the reserved blocks count neither as used nor as available.
        result[f"{prefix}.used_percent"] = (
            round(100.0 * used / (used + free), 2) if used + free else 0.0
        )
        if usage.f_files:
            used_inodes = usage.f_files - usage.f_ffree
            result[f"{prefix}.inodes_used_percent"] = round(100.0 * used_inodes / usage.f_files, 2)
    return result


class Collector:
    """Takes one sample at a time; rates are over the time since the previous sample."""

    def __init__(self, proc: str = PROC) -> None:
        self._proc = proc
        self._cpu = read_cpu(proc)
        self._net = read_network(proc)
        self._at = time.monotonic()

    def collect(self) -> Metrics:
        proc = self._proc
        now = time.monotonic()
        cpu = read_cpu(proc)
        net = read_network(proc)
        metrics: Metrics = {}
        metrics.update(cpu_percentages(self._cpu, cpu))
        metrics.update(network_rates(self._net, net, now - self._at))
        self._cpu, self._net, self._at = cpu, net, now
        for part in (load_average, memory, uptime, processes, disks):
            try:
                metrics.update(part(proc))
            except (OSError, ValueError, IndexError):
                continue  # one unreadable source must not cost the others
        return {name: value for name, value in metrics.items() if len(name) <= MAX_NAME}
