"""Key service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.db import ReplicaSettings
from scout_kit.redis import RedisSettings
from scout_kit.settings import CommonSettings, Env, Secret

DEFAULT_PORT = 50052
SERVICE = "key_service"


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: Secret
    replicas: ReplicaSettings
    redis: RedisSettings
    redis_prefix: str
    jwt_public_key: Secret
    db_pool_size: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        public_key = env.pem("INTERNAL_JWT_PUBLIC_KEY")
        assert public_key is not None
        return cls(
            common=CommonSettings.from_env(env, default_port=DEFAULT_PORT, service=SERVICE),
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            replicas=ReplicaSettings.from_env(env),
            redis=RedisSettings.from_env(env),
            redis_prefix=env.text("REDIS_PREFIX", "scout"),
            jwt_public_key=public_key,
            db_pool_size=env.integer("DB_POOL_SIZE", 10, minimum=1, maximum=200),
        )
