"""Ingest service settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from scout_kit.db import ReplicaSettings
from scout_kit.sample_rules import (
    DEFAULT_LATE_SAMPLE_HOURS,
    DEFAULT_RAW_RETENTION_DAYS,
    MAX_RETENTION_DAYS,
    MIN_LATE_SAMPLE_HOURS,
    MIN_RETENTION_DAYS,
)
from scout_kit.settings import CommonSettings, Env, Secret

DEFAULT_PORT = 50053
SERVICE = "ingest_service"


@dataclass(frozen=True)
class Settings:
    common: CommonSettings
    database_url: Secret
    replicas: ReplicaSettings
    jwt_public_key: Secret
    db_pool_size: int
    # Retention of raw samples, of the 1-minute and of the 1-hour tier; each at least as long
    # as the finer one.
    retention_days: int
    # How old an accepted sample may be (at most the raw retention): older days are packed.
    late_sample_hours: int
    rollup_1m_retention_days: int
    rollup_1h_retention_days: int
    # Group commit: values waiting for a transaction (beyond it, writes are refused with
    # RESOURCE_EXHAUSTED), values per transaction, and transactions in flight at once.
    max_queued_values: int
    max_batch_values: int
    writers: int
    # How often partitions are created ahead and expired ones dropped; how often stale rollup
    # buckets are recomputed.
    retention_interval_seconds: float
    rollup_interval_seconds: float
    # The bound of every statement of the background work (partitions, rollups, the move of
    # old samples): PostgreSQL stops it past this, and a pass that hit it halves its next batch.
    maintenance_statement_timeout_seconds: float
    # The bound of each index rebuild of the compaction of closed partitions (a day's data).
    compaction_statement_timeout_seconds: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        public_key = env.pem("INTERNAL_JWT_PUBLIC_KEY")
        assert public_key is not None
        pool_size = env.integer("DB_POOL_SIZE", 10, minimum=2, maximum=200)
        raw_days = env.integer(
            "RETENTION_DAYS",
            DEFAULT_RAW_RETENTION_DAYS,
            minimum=MIN_RETENTION_DAYS,
            maximum=MAX_RETENTION_DAYS,
        )
        late_hours = env.integer(
            "LATE_SAMPLE_HOURS",
            min(DEFAULT_LATE_SAMPLE_HOURS, raw_days * 24),
            minimum=MIN_LATE_SAMPLE_HOURS,
            maximum=raw_days * 24,
        )
        minute_days = env.integer(
            "ROLLUP_1M_RETENTION_DAYS", max(90, raw_days), minimum=raw_days, maximum=36_500
        )
        hour_days = env.integer(
            "ROLLUP_1H_RETENTION_DAYS", max(730, minute_days), minimum=minute_days, maximum=36_500
        )
        return cls(
            common=CommonSettings.from_env(env, default_port=DEFAULT_PORT, service=SERVICE),
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            replicas=ReplicaSettings.from_env(env),
            jwt_public_key=public_key,
            db_pool_size=pool_size,
            retention_days=raw_days,
            late_sample_hours=late_hours,
            rollup_1m_retention_days=minute_days,
            rollup_1h_retention_days=hour_days,
            max_queued_values=env.integer(
                "INGEST_MAX_QUEUED_VALUES", 1_000_000, minimum=1, maximum=100_000_000
            ),
            max_batch_values=env.integer(
                "INGEST_MAX_BATCH_VALUES", 50_000, minimum=1, maximum=1_000_000
            ),
            # Leave connections for queries and the background jobs.
            writers=env.integer("INGEST_WRITERS", 2, minimum=1, maximum=max(1, pool_size - 2)),
            retention_interval_seconds=env.number(
                "RETENTION_INTERVAL_SECONDS", 300.0, minimum=1.0, maximum=86_400.0
            ),
            rollup_interval_seconds=env.number(
                "ROLLUP_INTERVAL_SECONDS", 10.0, minimum=0.1, maximum=3600.0
            ),
            maintenance_statement_timeout_seconds=env.number(
                "MAINTENANCE_STATEMENT_TIMEOUT_SECONDS", 10.0, minimum=0.01, maximum=3600.0
            ),
            compaction_statement_timeout_seconds=env.number(
                "COMPACTION_STATEMENT_TIMEOUT_SECONDS", 1800.0, minimum=0.01, maximum=86_400.0
            ),
        )
