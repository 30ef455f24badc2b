"""The admin tool's settings for a test's environment, written once for every test that opens it."""

from __future__ import annotations

from scout_admin.settings import Settings as AdminSettings
from tests.stack import Environment


def admin_settings(env: Environment, database_url: str | None = None) -> AdminSettings:
    """Settings pointing the admin tool at the test's database and Redis prefix; `database_url`
    overrides the database (a test that runs its own PostgreSQL)."""
    return AdminSettings.from_env(
        {
            "DATABASE_URL": database_url or env.database_url,
            "REDIS_URL": env.redis_url,
            "REDIS_PREFIX": env.redis_prefix,
        }
    )
