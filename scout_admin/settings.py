"""scout-admin settings: the same variables the services read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.redis import RedisSettings
from scout_kit.settings import Env, Secret


@dataclass(frozen=True)
class Settings:
    database_url: Secret
    redis: RedisSettings
    redis_prefix: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        return cls(
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            redis=RedisSettings.from_env(env),
            redis_prefix=env.text("REDIS_PREFIX", "scout"),
        )
