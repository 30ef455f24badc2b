"""The admin tool's settings for a test's environment, written once for every test that opens it."""

from __future__ import annotations

from scout_admin.settings import Settings as AdminSettings
from tests.stack import Environment


def admin_settings(
    env: Environment, database_url: str | None = None, *, redis_prefix: str | None = None
) -> AdminSettings:
    """Settings pointing the admin tool at the environment's database and Redis (its URL, or the
    Sentinels of a failover test) under its key prefix. `database_url` overrides the database (a
    test that runs its own PostgreSQL), `redis_prefix` the prefix (a test that keeps its own)."""
    return AdminSettings.from_env(
        {
            "DATABASE_URL": database_url or env.database_url,
            **env.redis_env(),
            "REDIS_PREFIX": redis_prefix or env.redis_prefix,
        }
    )
