"""Gateway settings, read once from the environment."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gateway.server_status import (
    DEFAULT_AGENT_INTERVAL_SECONDS,
    DEFAULT_OFFLINE_INTERVALS,
    DEFAULT_WARNING_INTERVALS,
    StatusRule,
)
from scout_kit.invalidation import DEFAULT_LEASE_SECONDS, MAX_LEASE_SECONDS, MIN_LEASE_SECONDS
from scout_kit.redis import RedisSettings
from scout_kit.settings import Env, Secret, SettingsError, TracingSettings, internal_tls
from scout_kit.tls import CertificateFiles

# Two WriteBatch calls in flight by default: with one, posts wait out each commit while the
# ingest service and PostgreSQL idle (three back-to-back pairs on a quiet 2-core machine: row 5s
# 0.17-0.19 at one, 0.21-0.22 at two). On a machine with no core to spare a second call only
# halves the batches (README "Gateway CPU per request"): there INGEST_CALLS_IN_FLIGHT=1.
DEFAULT_INGEST_CALLS_IN_FLIGHT = 2


@dataclass(frozen=True)
class Settings:
    environment: str
    listen_host: str
    https_port: int
    # 0 disables the plain-HTTP listener (it only redirects pages and refuses the API).
    http_port: int
    tls_cert_file: Path
    tls_key_file: Path
    public_url: str
    key_service_addr: str
    auth_service_addr: str
    ingest_service_addr: str
    redis: RedisSettings
    redis_prefix: str
    jwt_private_key: Secret
    log_level: str
    log_format: str
    # One log line per request costs about as much CPU as the rest of a cached,
    # key-authenticated request; by default only failures and slow requests are logged
    # (key usage itself is in the activity log).
    access_log: str
    # With ACCESS_LOG=errors, at most this many client-error (4xx) lines a second: an agent fleet
    # on a regenerated key, or a flood of guesses, must not flood the log (5xx and slow requests
    # are always logged; the requests metric counts every answer).
    access_log_client_errors_per_second: int
    shutdown_grace_seconds: float
    rpc_timeout_seconds: float
    caches: CacheSettings
    key_usage_flush_seconds: float
    unknown_key_limit: int
    unknown_key_window_seconds: int
    trusted_proxy_hops: int
    hsts_max_age: int
    # host:port of the internal Prometheus endpoint; unset disables it.
    metrics_addr: str | None
    # Mutual TLS to the services, and how often the gateway looks for rotated files.
    internal_tls: CertificateFiles
    internal_tls_reload_seconds: float
    tracing: TracingSettings
    # On SIGTERM: readiness fails at once, new connections are still taken this long (until load
    # balancers have stopped sending), then in-flight requests get SHUTDOWN_GRACE_SECONDS.
    shutdown_drain_seconds: float
    # When a server counts as online, warning or offline (AGENT_INTERVAL_SECONDS, STATUS_*).
    status_rule: StatusRule
    ingest_calls_in_flight: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        env = Env(environ)
        cert, key = _public_tls_files(env)
        https_port = env.integer("HTTPS_PORT", 8443, minimum=0, maximum=65535)
        private_key = env.pem("INTERNAL_JWT_PRIVATE_KEY")
        assert private_key is not None
        reload_seconds = env.number(
            "INTERNAL_TLS_RELOAD_SECONDS", 30.0, minimum=0.05, maximum=3600.0
        )
        drain_seconds = env.number("SHUTDOWN_DRAIN_SECONDS", 0.0, minimum=0.0, maximum=120.0)
        return cls(
            environment=env.environment(),
            listen_host=env.text("LISTEN_HOST", "0.0.0.0"),
            https_port=https_port,
            http_port=env.integer("HTTP_PORT", 0, minimum=0, maximum=65535),
            tls_cert_file=cert,
            tls_key_file=key,
            public_url=_public_url(env, https_port),
            key_service_addr=env.address("KEY_SERVICE_ADDR"),
            auth_service_addr=env.address("AUTH_SERVICE_ADDR"),
            ingest_service_addr=env.address("INGEST_SERVICE_ADDR"),
            redis=RedisSettings.from_env(env),
            redis_prefix=env.text("REDIS_PREFIX", "scout"),
            jwt_private_key=private_key,
            log_level=env.choice("LOG_LEVEL", "info", ("debug", "info", "warning", "error")),
            log_format=env.choice("LOG_FORMAT", "auto", ("auto", "json", "text")),
            access_log=env.choice("ACCESS_LOG", "errors", ("all", "errors", "off")),
            access_log_client_errors_per_second=env.integer(
                "ACCESS_LOG_CLIENT_ERRORS_PER_SECOND", 20, minimum=1, maximum=1_000_000
            ),
            shutdown_grace_seconds=env.number(
                "SHUTDOWN_GRACE_SECONDS", 10.0, minimum=0.0, maximum=300.0
            ),
            rpc_timeout_seconds=env.number("RPC_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=60.0),
            caches=CacheSettings.from_env(env),
            key_usage_flush_seconds=env.number(
                "KEY_USAGE_FLUSH_SECONDS", 5.0, minimum=0.05, maximum=300.0
            ),
            unknown_key_limit=env.integer("UNKNOWN_KEY_LIMIT", 20, minimum=1, maximum=1_000_000),
            unknown_key_window_seconds=env.integer(
                "UNKNOWN_KEY_WINDOW_SECONDS", 60, minimum=1, maximum=86_400
            ),
            trusted_proxy_hops=env.integer("TRUSTED_PROXY_HOPS", 0, minimum=0, maximum=10),
            hsts_max_age=env.integer("HSTS_MAX_AGE", 31_536_000, minimum=31_536_000, maximum=10**9),
            metrics_addr=env.address("METRICS_ADDR") if env.optional("METRICS_ADDR") else None,
            internal_tls=internal_tls(env),
            internal_tls_reload_seconds=reload_seconds,
            tracing=TracingSettings.from_env(env, "gateway"),
            shutdown_drain_seconds=drain_seconds,
            status_rule=_status_rule(env),
            ingest_calls_in_flight=env.integer(
                "INGEST_CALLS_IN_FLIGHT", DEFAULT_INGEST_CALLS_IN_FLIGHT, minimum=1, maximum=64
            ),
        )


def _public_url(env: Env, https_port: int) -> str:
    public_url = env.text("PUBLIC_URL", f"https://localhost:{https_port}").rstrip("/")
    if not public_url.startswith("https://"):
        raise SettingsError("PUBLIC_URL must start with https://")
    return public_url


@dataclass(frozen=True)
class CacheSettings:
    """The key and session caches (gateway.keycache, gateway.sessioncache)."""

    key_size: int
    key_ttl_seconds: float
    session_size: int
    session_ttl_seconds: float
    # The cache lease (gateway.lease): a cache answers only this long after a PING that was
    # answered; publishers wait as long for a gateway that does not acknowledge.
    lease_seconds: float

    @classmethod
    def from_env(cls, env: Env) -> CacheSettings:
        return cls(
            key_size=env.integer("KEY_CACHE_SIZE", 100_000, minimum=0, maximum=10_000_000),
            key_ttl_seconds=env.number("KEY_CACHE_TTL_SECONDS", 60.0, minimum=0.0, maximum=3600.0),
            session_size=env.integer("SESSION_CACHE_SIZE", 100_000, minimum=0, maximum=10_000_000),
            session_ttl_seconds=env.number(
                "SESSION_CACHE_TTL_SECONDS", 30.0, minimum=0.0, maximum=300.0
            ),
            lease_seconds=env.number(
                "CACHE_LEASE_SECONDS",
                DEFAULT_LEASE_SECONDS,
                minimum=MIN_LEASE_SECONDS,
                maximum=MAX_LEASE_SECONDS,
            ),
        )


def _public_tls_files(env: Env) -> tuple[Path, Path]:
    cert = Path(env.text("TLS_CERT_FILE"))
    key = Path(env.text("TLS_KEY_FILE"))
    for name, path in (("TLS_CERT_FILE", cert), ("TLS_KEY_FILE", key)):
        if not path.is_file():
            raise SettingsError(f"{name}: no such file {path}")
    return cert, key


def _status_rule(env: Env) -> StatusRule:
    warning = env.integer(
        "STATUS_WARNING_INTERVALS", DEFAULT_WARNING_INTERVALS, minimum=1, maximum=1000
    )
    offline = env.integer(
        "STATUS_OFFLINE_INTERVALS", DEFAULT_OFFLINE_INTERVALS, minimum=2, maximum=10_000
    )
    if offline <= warning:
        raise SettingsError("STATUS_OFFLINE_INTERVALS must be more than STATUS_WARNING_INTERVALS")
    interval = env.number(
        "AGENT_INTERVAL_SECONDS", DEFAULT_AGENT_INTERVAL_SECONDS, minimum=0.1, maximum=3600.0
    )
    return StatusRule(interval, warning, offline)
