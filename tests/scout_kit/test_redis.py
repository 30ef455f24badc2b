"""Redis settings: one URL or Sentinels, validated, passwords hidden; replica waits fail closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from auth_service.sessions import SessionOwner, SessionStore
from auth_service.settings import Settings as AuthSettings
from gateway.settings import Settings as GatewaySettings
from key_service.settings import Settings as KeySettings
from scout_admin.settings import Settings as AdminSettings
from scout_kit.clock import SystemClock
from scout_kit.redis import Keyspace, NotReplicated, RedisSettings, ReplicaWait, create_redis
from scout_kit.settings import Env, SettingsError
from tests.conftest import TEST_REDIS_URL
from tests.stack import Environment

SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379, sentinel-b:26380", "REDIS_SENTINEL_MASTER": "m"}


def without_url(values: dict[str, str], **extra: str) -> dict[str, str]:
    return {k: v for k, v in values.items() if k != "REDIS_URL"} | extra


def test_sentinels_are_read_by_every_component(env: Environment) -> None:
    backends = {"KEY_SERVICE_ADDR": "a:1", "AUTH_SERVICE_ADDR": "a:2", "INGEST_SERVICE_ADDR": "a:3"}
    read = [
        GatewaySettings.from_env(without_url(env.gateway_env(backends), **SENTINELS)).redis,
        AuthSettings.from_env(without_url(env.service_env("auth"), **SENTINELS)).redis,
        KeySettings.from_env(without_url(env.service_env("keys"), **SENTINELS)).redis,
        AdminSettings.from_env(
            {"DATABASE_URL": env.database_url, "REDIS_PREFIX": "p", **SENTINELS}
        ).redis,
    ]
    for settings in read:
        assert settings.url is None
        assert settings.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380))
        assert settings.master == "m"
        assert settings.db == 0 and settings.min_replicas == 0


def test_passwords_come_from_files_and_never_show(tmp_path: Path) -> None:
    (tmp_path / "redis").write_text("hunter2\n")
    (tmp_path / "sentinel").write_text("s3cret\n")
    settings = RedisSettings.from_env(
        Env(
            SENTINELS
            | {
                "REDIS_PASSWORD_FILE": str(tmp_path / "redis"),
                "REDIS_SENTINEL_PASSWORD_FILE": str(tmp_path / "sentinel"),
                "REDIS_DB": "3",
                "REDIS_MIN_REPLICAS": "1",
                "REDIS_REPLICA_TIMEOUT_MS": "250",
            }
        )
    )
    assert settings.password is not None and settings.password.reveal() == "hunter2"
    assert settings.sentinel_password is not None
    assert settings.sentinel_password.reveal() == "s3cret"
    assert (settings.db, settings.min_replicas, settings.replica_timeout_ms) == (3, 1, 250)
    for text in (repr(settings), settings.describe()):
        assert "hunter2" not in text and "s3cret" not in text
    assert "sentinel-b:26380" in settings.describe()


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, "REDIS_URL"),
        ({"REDIS_URL": "redis://r/0", **SENTINELS}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "a:1"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINELS": "a", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "a:0", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "a:1,,b:2", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "a:1,a:1", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_URL": "redis://r/0", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_URL": "redis://r/0", "REDIS_PASSWORD": "x"}, "REDIS_PASSWORD"),
        ({"REDIS_URL": "redis://r/0", "REDIS_DB": "1"}, "REDIS_DB"),
        ({**SENTINELS, "REDIS_DB": "16"}, "REDIS_DB"),
        ({**SENTINELS, "REDIS_PASSWORD": "x", "REDIS_PASSWORD_FILE": "/f"}, "REDIS_PASSWORD"),
        ({"REDIS_URL": "redis://r/0", "REDIS_MIN_REPLICAS": "-1"}, "REDIS_MIN_REPLICAS"),
        ({"REDIS_URL": "redis://r/0", "REDIS_REPLICA_TIMEOUT_MS": "0"}, "REDIS_REPLICA_TIMEOUT"),
        ({"REDIS_URL": "redis://r/0", "REDIS_REPLICA_TIMEOUT_MS": "5000"}, "REDIS_REPLICA_TIMEOUT"),
    ],
)
def test_bad_redis_configuration_fails_fast_naming_the_variable(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(SettingsError, match=named):
        RedisSettings.from_env(Env(values))


async def test_a_write_no_replica_confirms_fails_closed(redis_prefix: str) -> None:
    settings = RedisSettings.from_env(
        Env(
            {
                "REDIS_URL": TEST_REDIS_URL,
                "REDIS_MIN_REPLICAS": "1",
                "REDIS_REPLICA_TIMEOUT_MS": "50",
            }
        )
    )
    client = create_redis(settings)
    keyspace = Keyspace(redis_prefix)
    try:
        await ReplicaWait().confirm(client, keyspace.key("barrier"))  # nothing to wait for
        with pytest.raises(NotReplicated, match="0 of 1"):
            await ReplicaWait.of(settings).confirm(client, keyspace.key("barrier"))
        sessions = SessionStore(client, keyspace, SystemClock(), replicas=ReplicaWait.of(settings))
        owner = SessionOwner("u1", "a1", "u1@example.com", "U", SystemClock().now())
        with pytest.raises(NotReplicated):
            await sessions.create(owner, "127.0.0.1", "test")
    finally:
        await client.aclose()
