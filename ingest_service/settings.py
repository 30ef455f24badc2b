"""Ingest service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.settings import CommonSettings, Env, Secret

DEFAULT_PORT = 50053
SERVICE = "ingest_service"


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: Secret
    jwt_public_key: Secret
    db_pool_size: int
    retention_days: int
    # Group commit: values waiting for a transaction (beyond it, writes are refused with
    # RESOURCE_EXHAUSTED), values per transaction, and transactions in flight at once.
    max_queued_values: int
    max_batch_values: int
    writers: int
    retention_interval_seconds: float
    retention_batch_size: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        public_key = env.pem("INTERNAL_JWT_PUBLIC_KEY")
        assert public_key is not None
        pool_size = env.integer("DB_POOL_SIZE", 10, minimum=2, maximum=200)
        return cls(
            common=CommonSettings.from_env(env, default_port=DEFAULT_PORT, service=SERVICE),
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            jwt_public_key=public_key,
            db_pool_size=pool_size,
            retention_days=env.integer("RETENTION_DAYS", 30, minimum=1, maximum=3650),
            max_queued_values=env.integer(
                "INGEST_MAX_QUEUED_VALUES", 1_000_000, minimum=1, maximum=100_000_000
            ),
            max_batch_values=env.integer(
                "INGEST_MAX_BATCH_VALUES", 50_000, minimum=1, maximum=1_000_000
            ),
            # Leave a connection for queries and retention.
            writers=env.integer("INGEST_WRITERS", 2, minimum=1, maximum=max(1, pool_size - 1)),
            retention_interval_seconds=env.number(
                "RETENTION_INTERVAL_SECONDS", 300.0, minimum=1.0, maximum=86_400.0
            ),
            retention_batch_size=env.integer(
                "RETENTION_BATCH_SIZE", 10_000, minimum=1, maximum=1_000_000
            ),
        )
