"""docker-compose.ha.yml on top of docker-compose.yml: Redis under three Sentinels with a
replica, a PostgreSQL standby; merged as `docker compose -f ... -f ...` merges them, every
component's settings load from what it is given, and the Sentinel configuration it writes is
one a real redis-server accepts (no Docker engine is needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from devstack.ports import free_ports
from scout_kit.db import host_count
from tests.test_compose import (
    COMPOSE_FILE,
    SECRETS_MOUNT,
    SECRETS_SCRIPT,
    SETTINGS,
    interpolate,
    secret_files,
    service_environment,
)

HA_FILE = COMPOSE_FILE.parent / "docker-compose.ha.yml"
SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")
# Compose appends these lists (and keeps one entry per mount target / name); it replaces others.
APPENDED = ("secrets", "volumes", "expose", "ports")


def merge(base: Any, override: Any, key: str = "") -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for name, value in override.items():
            merged[name] = merge(base[name], value, name) if name in base else value
        return merged
    if key in APPENDED and isinstance(base, list) and isinstance(override, list):
        return base + [item for item in override if item not in base]
    return override


@pytest.fixture(scope="module")
def merged() -> dict[str, Any]:
    document = merge(yaml.safe_load(COMPOSE_FILE.read_text()), yaml.safe_load(HA_FILE.read_text()))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secrets")
    subprocess.run([sys.executable, str(SECRETS_SCRIPT), str(directory)], check=True)
    return directory


def loaded_settings(merged: dict[str, Any], name: str, secrets_dir: Path) -> Any:
    files = secret_files(merged, {"SCOUT_SECRETS_DIR": str(secrets_dir)})
    service = merged["services"][name]
    env = {}
    for key, value in service_environment(service).items():
        value = interpolate(value, {})
        if value.startswith(SECRETS_MOUNT):
            secret = value.removeprefix(SECRETS_MOUNT)
            assert secret in service["secrets"], f"{name} reads {secret} without mounting it"
            value = files[secret]
        env[key] = value
    return SETTINGS[name](env)


@pytest.mark.parametrize("name", ["auth", "keys", "gateway", "migrate"])
def test_redis_users_follow_the_sentinels(
    merged: dict[str, Any], name: str, secrets_dir: Path
) -> None:
    redis_settings = loaded_settings(merged, name, secrets_dir).redis
    assert redis_settings.url is None
    assert redis_settings.sentinels == tuple((host, 26379) for host in SENTINELS)
    assert redis_settings.master == "scout"
    assert redis_settings.min_replicas == (1 if name in ("auth", "migrate") else 0)
    assert set(SENTINELS) <= set(merged["services"][name]["depends_on"])


@pytest.mark.parametrize("name", ["auth", "keys", "ingest", "migrate"])
def test_database_users_list_both_servers_and_ingest_reads_the_standby(
    merged: dict[str, Any], name: str, secrets_dir: Path
) -> None:
    settings = loaded_settings(merged, name, secrets_dir)
    dsn = settings.database_url.reveal()
    assert host_count(dsn) == 2 and "target_session_attrs=read-write" in dsn
    if name == "ingest":
        (replica,) = settings.replicas.urls
        assert "@postgres-replica:5432/" in replica.reveal()


def test_every_dependency_secret_and_volume_is_declared(merged: dict[str, Any]) -> None:
    services = merged["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for secret in service.get("secrets", []):
            assert secret in merged["secrets"], (name, secret)
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("."):
                assert source in merged["volumes"], (name, volume)
            else:
                assert (COMPOSE_FILE.parent / source).exists(), (name, volume)
    assert {"redis-replica", "postgres-replica", *SENTINELS} <= set(services)


def test_the_sentinel_configuration_is_accepted_by_redis(
    merged: dict[str, Any], tmp_path: Path
) -> None:
    """The command each Sentinel container runs, with the compose names pointed at a local
    redis-server: it starts, monitors the master and answers for it."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is required for this test (Debian package redis-server)")
    master_port, sentinel_port = free_ports(2)
    master = subprocess.Popen(
        [binary, "--port", str(master_port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    command = merged["services"]["sentinel-1"]["command"]
    script = (
        interpolate(command[2], {})
        .replace("port 26379", f"port {sentinel_port}")
        .replace("monitor scout redis 6379", f"monitor scout 127.0.0.1 {master_port}")
        .replace("/tmp/sentinel.conf", str(tmp_path / "sentinel.conf"))  # noqa: S108
        .replace("exec redis-server", f"exec {binary}")
    )
    environment = {**os.environ, **merged["services"]["sentinel-1"]["environment"]}
    environment["SENTINEL_HOST"] = "127.0.0.1"
    sentinel = subprocess.Popen(
        [command[0], command[1], script], env=environment, stdout=subprocess.DEVNULL
    )
    client = redis.Redis(host="127.0.0.1", port=sentinel_port, socket_timeout=2)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                address = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", "scout")
                break
            except redis.ConnectionError:
                assert sentinel.poll() is None, "the Sentinel exited"
                assert time.monotonic() < deadline, "the Sentinel did not answer"
                time.sleep(0.1)
        assert [bytes(part) for part in address] == [b"127.0.0.1", str(master_port).encode()]
        config = (tmp_path / "sentinel.conf").read_text()
        assert "down-after-milliseconds scout 5000" in config
    finally:
        client.close()
        for process in (sentinel, master):
            process.terminate()
            process.wait(10)
