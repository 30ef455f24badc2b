"""Settings fail fast with a message naming the variable, and never print secrets."""

from __future__ import annotations

import pytest

from gateway.settings import Settings as GatewaySettings
from key_service.settings import Settings as KeySettings
from scout_kit.settings import Env, Secret, SettingsError
from tests.stack import Environment


def test_missing_variable_is_named(env: Environment) -> None:
    values = env.service_env()
    del values["DATABASE_URL"]
    with pytest.raises(SettingsError, match="DATABASE_URL"):
        KeySettings.from_env(values)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DB_POOL_SIZE", "lots"),
        ("DB_POOL_SIZE", "0"),
        ("LISTEN_ADDR", "no-port"),
        ("DATABASE_URL", "mysql://x/y"),
        ("LOG_LEVEL", "chatty"),
        ("SCOUT_ENV", "staging"),
        ("INTERNAL_JWT_PUBLIC_KEY", "not a pem"),
    ],
)
def test_malformed_variable_is_named(env: Environment, name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        KeySettings.from_env(env.service_env(**{name: value}))


def test_secrets_do_not_show_in_repr(env: Environment) -> None:
    settings = KeySettings.from_env(
        env.service_env(DATABASE_URL="postgresql://scout:hunter2@db/scout")
    )
    assert "hunter2" not in repr(settings)
    assert "BEGIN PUBLIC KEY" not in repr(settings)
    assert settings.database_url.reveal().endswith("@db/scout")


def test_gateway_refuses_plain_http_public_url(env: Environment) -> None:
    values = env.gateway_env(
        {"KEY_SERVICE_ADDR": "a:1", "AUTH_SERVICE_ADDR": "a:2", "INGEST_SERVICE_ADDR": "a:3"},
        PUBLIC_URL="http://example.com",
    )
    with pytest.raises(SettingsError, match="PUBLIC_URL"):
        GatewaySettings.from_env(values)


@pytest.mark.parametrize("value", ["0.2", "1.6", "soon"])
def test_gateway_cache_lease_is_bounded(env: Environment, value: str) -> None:
    values = env.gateway_env(
        {"KEY_SERVICE_ADDR": "a:1", "AUTH_SERVICE_ADDR": "a:2", "INGEST_SERVICE_ADDR": "a:3"},
        CACHE_LEASE_SECONDS=value,
    )
    with pytest.raises(SettingsError, match="CACHE_LEASE_SECONDS"):
        GatewaySettings.from_env(values)


def test_gateway_names_a_missing_certificate(env: Environment) -> None:
    values = env.gateway_env(
        {"KEY_SERVICE_ADDR": "a:1", "AUTH_SERVICE_ADDR": "a:2", "INGEST_SERVICE_ADDR": "a:3"},
        TLS_CERT_FILE="/nonexistent.pem",
    )
    with pytest.raises(SettingsError, match="TLS_CERT_FILE"):
        GatewaySettings.from_env(values)


def test_pem_inline_and_file_are_exclusive(tmp_path: object) -> None:
    env = Env({"K": "-----BEGIN X-----", "K_FILE": "/etc/hostname"})
    with pytest.raises(SettingsError, match="only one of K and K_FILE"):
        env.pem("K")


@pytest.mark.parametrize(
    "target", ["host:50051", "dns:///keys:50051", "ipv4:127.0.0.1:1,127.0.0.1:2"]
)
def test_grpc_targets_accept_replica_lists(target: str) -> None:
    assert Env({"ADDR": target}).address("ADDR") == target


def test_secret_equality_without_exposure() -> None:
    assert Secret("a") == Secret("a")
    assert str(Secret("a")) == "Secret('**********')"
