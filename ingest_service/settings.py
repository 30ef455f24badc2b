"""Ingest service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.settings import CommonSettings, Env, Secret

DEFAULT_PORT = 50053


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: Secret
    jwt_public_key: Secret
    db_pool_size: int
    retention_days: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        public_key = env.pem("INTERNAL_JWT_PUBLIC_KEY")
        assert public_key is not None
        return cls(
            common=CommonSettings.from_env(env, default_port=DEFAULT_PORT),
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            jwt_public_key=public_key,
            db_pool_size=env.int("DB_POOL_SIZE", 10, minimum=1, maximum=200),
            retention_days=env.int("RETENTION_DAYS", 30, minimum=1, maximum=3650),
        )
