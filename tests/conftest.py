"""Fixtures: every run gets its own PostgreSQL database and Redis key prefix, and cleans up."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import psycopg2
import pytest
import redis

from devstack.certs import ensure_dev_certificates, ensure_internal_certificates
from scout_admin.commands import Admin, open_admin
from scout_kit.identity import generate_keypair
from tests.admin_support import admin_settings
from tests.log_secrets import register_secret
from tests.stack import Environment

ADMIN_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _admin_connection() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(ADMIN_POSTGRES_URL)
    conn.autocommit = True
    return conn


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    name = f"scout_test_{uuid.uuid4().hex[:12]}"
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    base = ADMIN_POSTGRES_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    conn = _admin_connection()
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture(scope="session")
def redis_prefix() -> Iterator[str]:
    prefix = f"scout_test_{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(TEST_REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def tls_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tls")


@pytest.fixture(scope="session")
def env(database_url: str, redis_prefix: str, tls_dir: Path) -> Environment:
    private_pem, public_pem = generate_keypair()
    certs = ensure_dev_certificates(tls_dir)
    return Environment(
        database_url=database_url,
        redis_url=TEST_REDIS_URL,
        redis_prefix=redis_prefix,
        jwt_private_pem=private_pem,
        jwt_public_pem=public_pem,
        ca_file=str(certs.ca_cert),
        cert_file=str(certs.server_cert),
        key_file=str(certs.server_key),
        internal=ensure_internal_certificates(tls_dir / "internal"),
    )


@pytest.fixture
async def admin(env: Environment) -> AsyncIterator[Admin]:
    settings = admin_settings(env)
    async with open_admin(settings) as opened:
        await opened.migrate()
        yield opened


def unique_email() -> str:
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


STRONG_PASSWORD = "correct horse battery staple 42"
register_secret(STRONG_PASSWORD)
