"""Auth service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.settings import CommonSettings, Env, Secret

DEFAULT_PORT = 50051


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: Secret
    redis_url: Secret
    redis_prefix: str
    jwt_public_key: Secret
    db_pool_size: int
    session_idle_seconds: int
    session_absolute_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        public_key = env.pem("INTERNAL_JWT_PUBLIC_KEY")
        assert public_key is not None
        return cls(
            common=CommonSettings.from_env(env, default_port=DEFAULT_PORT),
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            redis_url=env.url("REDIS_URL", ("redis", "rediss", "unix")),
            redis_prefix=env.str("REDIS_PREFIX", "scout"),
            jwt_public_key=public_key,
            db_pool_size=env.int("DB_POOL_SIZE", 10, minimum=1, maximum=200),
            session_idle_seconds=env.int(
                "SESSION_IDLE_SECONDS", 1800, minimum=60, maximum=86_400
            ),
            session_absolute_seconds=env.int(
                "SESSION_ABSOLUTE_SECONDS", 43_200, minimum=300, maximum=30 * 86_400
            ),
        )
