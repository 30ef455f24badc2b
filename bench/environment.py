"""What one bench run owns: a database, a Redis key prefix, a development CA and signing keys.

Everything is created at the start and removed at the end, so `make bench` needs only a reachable
PostgreSQL server (to create a database on) and Redis.
"""

from __future__ import annotations

import contextlib
import os
import ssl
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import redis

from devstack.certs import (
    GATEWAY,
    InternalCertificates,
    ensure_dev_certificates,
    ensure_internal_certificates,
)
from scout_kit.identity import generate_keypair
from scout_kit.tls import TlsMaterial

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class DependencyUnavailable(RuntimeError):
    """PostgreSQL or Redis cannot be reached; the message says what to set."""


@dataclass(frozen=True)
class BenchEnvironment:
    workdir: Path
    database_url: str
    redis_url: str
    redis_prefix: str
    jwt_private_pem: str
    jwt_public_pem: str
    ca_file: Path
    cert_file: Path
    key_file: Path
    internal: InternalCertificates

    def internal_tls_env(self, component: str) -> dict[str, str]:
        """Mutual TLS between the processes, as deployed."""
        files = self.internal.files(component)
        return {
            "INTERNAL_TLS_CA_FILE": str(files.ca_file),
            "INTERNAL_TLS_CERT_FILE": str(files.cert_file),
            "INTERNAL_TLS_KEY_FILE": str(files.key_file),
        }

    def client_tls(self) -> TlsMaterial:
        """The gateway's certificate, for the bench's own gRPC calls."""
        return self.internal.material(GATEWAY)

    def service_env(self, component: str, log_level: str, **overrides: str) -> dict[str, str]:
        return {
            "SCOUT_ENV": "development",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": self.redis_prefix,
            "INTERNAL_JWT_PUBLIC_KEY": self.jwt_public_pem,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": log_level,
            "SHUTDOWN_GRACE_SECONDS": "2",
            **self.internal_tls_env(component),
            **overrides,
        }

    def gateway_env(
        self, backends: Mapping[str, str], log_level: str, **overrides: str
    ) -> dict[str, str]:
        return {
            "SCOUT_ENV": "development",
            "LISTEN_HOST": "127.0.0.1",
            "HTTP_PORT": "0",
            "TLS_CERT_FILE": str(self.cert_file),
            "TLS_KEY_FILE": str(self.key_file),
            "PUBLIC_URL": "https://localhost",
            "REDIS_URL": self.redis_url,
            "REDIS_PREFIX": self.redis_prefix,
            "INTERNAL_JWT_PRIVATE_KEY": self.jwt_private_pem,
            "LOG_FORMAT": "json",
            "LOG_LEVEL": log_level,
            "SHUTDOWN_GRACE_SECONDS": "2",
            **self.internal_tls_env(GATEWAY),
            **backends,
            **overrides,
        }

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def _server_urls(environ: Mapping[str, str]) -> tuple[str, str]:
    postgres = (
        environ.get("BENCH_POSTGRES_URL") or environ.get("DATABASE_URL") or DEFAULT_POSTGRES_URL
    )
    redis_url = environ.get("BENCH_REDIS_URL") or environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    return postgres, redis_url


def _admin_connection(url: str) -> psycopg2.extensions.connection:
    try:
        conn = psycopg2.connect(url, connect_timeout=5)
    except psycopg2.OperationalError as exc:
        raise DependencyUnavailable(
            f"cannot reach PostgreSQL at {_redact(url)} ({str(exc).strip()}); set "
            "BENCH_POSTGRES_URL to a server where the bench may create a database"
        ) from None
    conn.autocommit = True
    return conn


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user = credentials.split(":", 1)[0]
        return f"{scheme}{sep}{user}@{host}"
    return url


@contextlib.contextmanager
def bench_environment(environ: Mapping[str, str] | None = None) -> Iterator[BenchEnvironment]:
    """Create the run's database, prefix, certificates and keys; remove them on exit."""
    postgres_url, redis_url = _server_urls(os.environ if environ is None else environ)
    name = f"scout_bench_{uuid.uuid4().hex[:12]}"
    prefix = name
    redis_client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        try:
            redis_client.ping()
        except redis.exceptions.RedisError as exc:
            raise DependencyUnavailable(
                f"cannot reach Redis at {_redact(redis_url)} ({exc}); set BENCH_REDIS_URL"
            ) from None
        conn = _admin_connection(postgres_url)
        try:
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        try:
            with tempfile.TemporaryDirectory(prefix="scout-bench-") as tmp:
                workdir = Path(tmp)
                certs = ensure_dev_certificates(workdir / "tls")
                private_pem, public_pem = generate_keypair()
                yield BenchEnvironment(
                    workdir=workdir,
                    database_url=f"{postgres_url.rsplit('/', 1)[0]}/{name}",
                    redis_url=redis_url,
                    redis_prefix=prefix,
                    jwt_private_pem=private_pem,
                    jwt_public_pem=public_pem,
                    ca_file=certs.ca_cert,
                    cert_file=certs.server_cert,
                    key_file=certs.server_key,
                    internal=ensure_internal_certificates(workdir / "tls" / "internal"),
                )
        finally:
            conn = _admin_connection(postgres_url)
            try:
                with conn.cursor() as cur:
                    cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                conn.close()
            for key in redis_client.scan_iter(match=f"{prefix}:*", count=1000):
                redis_client.delete(key)
    finally:
        redis_client.close()
