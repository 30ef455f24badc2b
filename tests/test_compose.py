"""docker-compose.yml runs the same system: every service is there, and every variable the code
requires is given (no Docker engine is needed; the required set is read from the code itself)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.certs import ensure_dev_certificates
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
REQUIRED_SECRETS = ("POSTGRES_PASSWORD", "INTERNAL_JWT_PRIVATE_KEY", "INTERNAL_JWT_PUBLIC_KEY")
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


def container_path(service: Mapping[str, Any], path: str, variables: Mapping[str, str]) -> str:
    """Where a container path lives on the host, through the service's bind mounts."""
    for volume in service.get("volumes") or []:
        source, target = interpolate(str(volume), variables).split(":")[:2]
        if path.startswith(target.rstrip("/") + "/"):
            return source + path[len(target.rstrip("/")) :]
    return path


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
    name: str, compose: dict[str, Any], tmp_path: Path, keypair: tuple[str, str]
) -> None:
    """Not only named: the values compose passes (secrets filled in) load without error."""
    certs = ensure_dev_certificates(tmp_path / "tls")
    (tmp_path / "tls" / "tls.crt").write_bytes(certs.server_cert.read_bytes())
    (tmp_path / "tls" / "tls.key").write_bytes(certs.server_key.read_bytes())
    variables = {
        "POSTGRES_PASSWORD": "pw",
        "INTERNAL_JWT_PRIVATE_KEY": keypair[0],
        "INTERNAL_JWT_PUBLIC_KEY": keypair[1],
        "TLS_DIR": str(tmp_path / "tls"),
    }
    service = compose["services"][name]
    env = {k: interpolate(v, variables) for k, v in service_environment(service).items()}
    for key in ("TLS_CERT_FILE", "TLS_KEY_FILE"):
        if key in env:
            env[key] = container_path(service, env[key], variables)
    SETTINGS[name](env)


def test_required_secrets_fail_loudly_when_unset() -> None:
    text = COMPOSE_FILE.read_text()
    for variable in (*REQUIRED_SECRETS, "TLS_DIR"):
        assert re.search(rf"\$\{{{variable}:\?[^}}]+\}}", text), f"{variable} must use ${{:?}}"
    with pytest.raises(LookupError, match="POSTGRES_PASSWORD"):
        interpolate("${POSTGRES_PASSWORD:?URL-safe database password}", {})


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
