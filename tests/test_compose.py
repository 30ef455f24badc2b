"""docker-compose.yml runs the same system: every service is there, every variable the code
requires is given, secrets are files, resources are bounded and stops are graceful (no Docker
engine is needed; the required set is read from the code itself)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import Settings as GatewaySettings
from ingest_service.settings import Settings as IngestSettings
from scout_kit.identity import generate_keypair
from tests.settings_support import SETTINGS_BY_MODULE, missing_from, required_variables

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"

# Compose service -> the module it runs.
MODULES = {
    "auth": "auth_service",
    "keys": "key_service",
    "ingest": "ingest_service",
    "gateway": "gateway",
}
SETTINGS = {name: SETTINGS_BY_MODULE[module] for name, module in MODULES.items()} | {
    "migrate": SETTINGS_BY_MODULE["scout_admin"]
}
SECRETS_SCRIPT = ROOT / "scripts" / "deploy_secrets.py"
SECRETS_MOUNT = "/run/secrets/"
# Settings whose value is a secret: compose gives them only as files.
SECRET_SETTINGS = (
    "DATABASE_URL",
    "INTERNAL_JWT_PRIVATE_KEY",
    "INTERNAL_TLS_KEY_FILE",
    "TLS_KEY_FILE",
)
_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def keypair() -> tuple[str, str]:
    return generate_keypair()


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {str(k): "" if v is None else str(v) for k, v in environment.items()}


def interpolate(value: str, variables: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message}, as `docker compose` would."""

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3)
        current = variables.get(name, "")
        if operator in (":?", "?"):
            if not current:
                raise LookupError(f"{name}: {argument}")
            return current
        if operator in (":-", "-") and not current:
            return argument
        return current

    return _INTERPOLATION.sub(substitute, value.replace("$$", "\0")).replace("\0", "$")


def secret_files(compose: Mapping[str, Any], variables: Mapping[str, str]) -> dict[str, str]:
    """Secret name -> the host file compose mounts at /run/secrets/<name>."""
    return {name: interpolate(spec["file"], variables) for name, spec in compose["secrets"].items()}


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What an operator makes first: scripts/deploy_secrets.py, run as documented."""
    directory = tmp_path_factory.mktemp("secrets")
    subprocess.run([sys.executable, str(SECRETS_SCRIPT), str(directory)], check=True)
    return directory


def test_every_service_is_defined(compose: dict[str, Any]) -> None:
    assert {"auth", "keys", "ingest", "gateway", "postgres", "redis", "migrate"} <= set(
        compose["services"]
    )


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_every_variable_the_code_requires_is_provided(
    name: str, compose: dict[str, Any], tmp_path: Path, keypair: tuple[str, str]
) -> None:
    required = required_variables(SETTINGS[name], tmp_path, keypair)
    assert required, "the settings should require something (at least DATABASE_URL or TLS)"
    missing = missing_from(required, set(service_environment(compose["services"][name])))
    assert not missing, f"compose service {name!r} lacks {sorted(missing)}"


def test_required_variables_are_found_in_the_code(tmp_path: Path, keypair: tuple[str, str]) -> None:
    """The derivation itself: a few variables that the settings certainly require."""
    gateway = required_variables(GatewaySettings.from_env, tmp_path, keypair)
    assert {"TLS_CERT_FILE", "INTERNAL_JWT_PRIVATE_KEY", "KEY_SERVICE_ADDR"} <= gateway
    ingest = required_variables(IngestSettings.from_env, tmp_path, keypair)
    assert {"DATABASE_URL", "INTERNAL_JWT_PUBLIC_KEY"} <= ingest
    assert "REDIS_URL" not in ingest


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_the_settings_accept_what_compose_gives(
    name: str, compose: dict[str, Any], secrets_dir: Path
) -> None:
    """Not only named: the values compose passes, with the secret files the documented script
    makes mounted where compose mounts them, load without error."""
    files = secret_files(compose, {"SCOUT_SECRETS_DIR": str(secrets_dir)})
    service = compose["services"][name]
    env = {}
    for key, value in service_environment(service).items():
        value = interpolate(value, {})
        if value.startswith(SECRETS_MOUNT):
            secret = value.removeprefix(SECRETS_MOUNT)
            assert secret in service["secrets"], f"{name} reads {secret} without mounting it"
            value = files[secret]
        env[key] = value
    SETTINGS[name](env)


def test_secrets_are_files_never_environment_values(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in service_environment(service).items():
            if any(key.startswith(secret) for secret in SECRET_SETTINGS) or "PASSWORD" in key:
                assert key.endswith("_FILE"), f"{name}: {key} must be given as a file"
                assert value.startswith(SECRETS_MOUNT), f"{name}: {key} is not a mounted secret"
    text = COMPOSE_FILE.read_text()
    assert "BEGIN" not in text
    assert re.search(r"\$\{SCOUT_SECRETS_DIR:\?[^}]+\}", text), "the directory must be required"
    with pytest.raises(LookupError, match="SCOUT_SECRETS_DIR"):
        interpolate("${SCOUT_SECRETS_DIR:?directory}", {})


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m)", duration)
    assert match, duration
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60}[match.group(2)]


def test_every_service_is_bounded_and_stops_after_draining(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        limits = service["deploy"]["resources"]["limits"]
        assert {"cpus", "memory"} <= set(limits), name
        env = service_environment(service)
        if name in MODULES:
            grace = float(env["SHUTDOWN_GRACE_SECONDS"]) + float(
                env.get("SHUTDOWN_DRAIN_SECONDS", "0")
            )
            assert seconds(service["stop_grace_period"]) > grace, name
    assert float(service_environment(compose["services"]["gateway"])["SHUTDOWN_DRAIN_SECONDS"]) > 0


def test_services_start_in_order_and_report_health(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("postgres", "redis", *MODULES):
        assert "healthcheck" in services[name], f"{name} has no healthcheck"
    assert services["migrate"]["command"] == ["scout-admin", "migrate"]
    for name, module in MODULES.items():
        service = services[name]
        assert service["command"] == ["python", "-m", module]
        assert service["build"]["dockerfile"] == "deploy/docker/Dockerfile"
        conditions = {dep: spec["condition"] for dep, spec in service["depends_on"].items()}
        assert set(conditions.values()) <= {"service_healthy", "service_completed_successfully"}
        if name != "gateway":
            assert conditions["migrate"] == "service_completed_successfully"
            port = service_environment(service)["LISTEN_ADDR"].rsplit(":", 1)[1]
            probe = service["healthcheck"]["test"]
            assert probe == ["CMD", "python", "-m", "scout_kit.healthcheck", f"127.0.0.1:{port}"]
    gateway = services["gateway"]
    assert {"auth", "keys", "ingest", "redis"} <= set(gateway["depends_on"])
    assert sorted(gateway["ports"]) == ["443:8443", "80:8080"]


def test_gateway_targets_the_services_listen_ports(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = service_environment(services["gateway"])
    for variable, name in (
        ("AUTH_SERVICE_ADDR", "auth"),
        ("KEY_SERVICE_ADDR", "keys"),
        ("INGEST_SERVICE_ADDR", "ingest"),
    ):
        listen_port = service_environment(services[name])["LISTEN_ADDR"].rsplit(":", 1)[1]
        assert env[variable] == f"dns:///{name}:{listen_port}"


def test_the_image_runs_as_a_non_root_user() -> None:
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert users, "the image must set USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_redis_keeps_sessions_across_a_restart(compose: dict[str, Any]) -> None:
    command = compose["services"]["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "yes"
    assert options["--appendfsync"] == "everysec"
    assert "/data" in {volume.split(":")[1] for volume in compose["services"]["redis"]["volumes"]}
