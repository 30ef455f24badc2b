"""Collectors (names the API accepts, pseudo filesystems skipped, rates from deltas) and the
spool (oldest first, bounded, drops counted across restarts)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from scout_agent.agent import rfc3339, to_samples
from scout_agent.collect import (
    Collector,
    cpu_percentages,
    disk_label,
    mount_points,
    network_rates,
)
from scout_agent.spool import Spool

API_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,200}")


def test_every_metric_name_is_one_the_api_accepts() -> None:
    collector = Collector()
    time.sleep(0.2)  # CPU percentages need ticks between two readings
    metrics = collector.collect()
    assert {"cpu.percent", "load.1", "mem.used_percent", "uptime.seconds", "proc.count"} <= set(
        metrics
    )
    assert all(API_NAME.fullmatch(name) for name in metrics)
    assert all(isinstance(value, int | float) for value in metrics.values())


def test_cpu_is_total_and_per_mode_percentages_of_the_delta() -> None:
    before = [100, 0, 50, 800, 50, 0, 0, 0]
    after = [160, 0, 70, 900, 70, 0, 0, 0]  # 200 ticks: 60 user, 20 system, 100 idle, 20 io
    result = cpu_percentages(before, after)
    assert result["cpu.user"] == 30.0 and result["cpu.iowait"] == 10.0
    assert result["cpu.percent"] == 40.0  # busy = not idle, not waiting for I/O
    assert cpu_percentages(after, after) == {}


def test_network_rates_skip_new_and_reset_interfaces() -> None:
    before = {"eth0": (1000, 2000), "eth1": (500, 500)}
    after = {"eth0": (3000, 2500), "eth1": (100, 600), "wg0": (1, 1)}
    assert network_rates(before, after, 2.0) == {
        "net.eth0.rx_bytes_per_s": 1000.0,
        "net.eth0.tx_bytes_per_s": 250.0,
    }


def test_mounts_skip_pseudo_and_network_filesystems(tmp_path: Path) -> None:
    (tmp_path / "mounts").write_text(
        "/dev/sda1 / ext4 rw 0 0\n"
        "proc /proc proc rw 0 0\n"
        "tmpfs /run tmpfs rw 0 0\n"
        "/dev/sdb1 /srv/my\\040data xfs rw 0 0\n"
        "server:/export /mnt/nfs nfs4 rw 0 0\n"
        "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"
    )
    assert list(mount_points(str(tmp_path))) == [("/", "ext4"), ("/srv/my data", "xfs")]
    assert disk_label("/") == "root" and disk_label("/srv/my data.1") == "srv/my_data_1"


def test_samples_are_split_at_the_api_limit() -> None:
    metrics = {f"m{i:04d}": float(i) for i in range(1200)}
    samples = to_samples(1_700_000_000_123, metrics)
    assert [len(s["metrics"]) for s in samples] == [500, 500, 200]
    assert (
        {s["ts"] for s in samples} == {"2023-11-14T22:13:20.123Z"} == {rfc3339(1_700_000_000_123)}
    )


def test_spool_is_bounded_oldest_first_and_counts_drops(tmp_path: Path) -> None:
    spool = Spool(str(tmp_path / "spool"), max_samples=3)
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    for ts in range(1, 6):
        spool.add(ts, [{"ts": ts, "metrics": {"x": ts}}])
    names = spool.names()
    assert len(names) == 3
    assert [entry.samples[0]["ts"] for entry in spool.read(names)] == [3, 4, 5]
    assert spool.dropped == 2
    assert all(not n.startswith(".tmp") for n in (p.name for p in (tmp_path / "spool").iterdir()))
    # The count survives a restart; a corrupt file is set aside and counted as rejected.
    (tmp_path / "spool" / names[0]).write_text("{not json")
    again = Spool(str(tmp_path / "spool"), max_samples=3)
    assert again.dropped == 2
    assert [e.samples[0]["ts"] for e in again.read(again.names())] == [4, 5]
    assert again.rejected == 1
    assert json.loads((tmp_path / "spool" / "state.json").read_text()) == {
        "dropped": 2,
        "rejected": 1,
    }
