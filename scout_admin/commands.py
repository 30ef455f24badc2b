"""What scout-admin does, as functions that `make run`'s seeding and the tests call too."""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiopg
import redis.asyncio as aioredis

from auth_service.activity import ActivityLog
from auth_service.domain import Authentication
from auth_service.events import RedisSessionEndPublisher
from auth_service.passwords import Passwords
from auth_service.sessions import SessionStore
from auth_service.throttle import LoginThrottle
from auth_service.users import SCHEMA as AUTH_SCHEMA
from auth_service.users import UserDirectory, UserRecord
from ingest_service.repository import SCHEMA as INGEST_SCHEMA
from key_service.domain import Created, KeyManager, Rotated
from key_service.events import RedisInvalidationPublisher
from key_service.models import ServerRecord
from key_service.repository import SCHEMA as KEYS_SCHEMA
from key_service.repository import PostgresKeyRepository
from scout_admin.settings import Settings
from scout_kit.clock import SystemClock
from scout_kit.db import close_pool, create_pool, migrate
from scout_kit.redis import Keyspace, ReplicaWait, create_redis

MIGRATIONS = (
    (AUTH_SCHEMA, "auth_service.migrations"),
    (KEYS_SCHEMA, "key_service.migrations"),
    (INGEST_SCHEMA, "ingest_service.migrations"),
)


def admin_actor() -> str:
    try:
        return f"admin:{getpass.getuser()}"
    except (KeyError, OSError):
        return "admin:unknown"


@dataclass
class Admin:
    pool: aiopg.Pool
    redis: aioredis.Redis
    keyspace: Keyspace
    replicas: ReplicaWait = field(default_factory=ReplicaWait)

    @property
    def users(self) -> UserDirectory:
        return UserDirectory(self.pool, Passwords(), SystemClock())

    @property
    def keys(self) -> KeyManager:
        publisher = RedisInvalidationPublisher(self.redis, self.keyspace, admin_actor())
        return KeyManager(PostgresKeyRepository(self.pool), publisher, SystemClock())

    async def migrate(self) -> list[str]:
        applied = []
        for schema, package in MIGRATIONS:
            applied += [f"{schema}.{name}" for name in await migrate(self.pool, schema, package)]
        return applied

    async def create_user(self, email: str, password: str, account_name: str | None) -> UserRecord:
        return await self.users.create_user(email, password, account_name=account_name)

    @property
    def authentication(self) -> Authentication:
        clock = SystemClock()
        passwords = Passwords()
        return Authentication(
            UserDirectory(self.pool, passwords, clock),
            passwords,
            SessionStore(self.redis, self.keyspace, clock, replicas=self.replicas),
            LoginThrottle(self.redis, self.keyspace, clock),
            ActivityLog(self.pool, clock),
            RedisSessionEndPublisher(self.redis, self.keyspace, admin_actor(), clock),
        )

    async def disable_user(self, email: str) -> tuple[UserRecord, int]:
        """Disable the user and end all their sessions at once (how many were ended)."""
        return await self.authentication.disable_user(email, admin_actor())

    async def enable_user(self, email: str) -> UserRecord:
        return await self.authentication.enable_user(email)

    async def list_servers(self, email: str) -> list[ServerRecord]:
        user = await self.users.by_email(email)
        servers: list[ServerRecord] = []
        token = ""
        while True:
            page, token = await self.keys.list_servers(user.account_id, size=200, token=token)
            servers += page
            if not token:
                return servers

    async def rotate_key(self, email: str, server_id: str, grace_seconds: int) -> Rotated:
        user = await self.users.by_email(email)
        return await self.keys.rotate_key(
            user.account_id, server_id, grace_seconds=grace_seconds, actor=admin_actor()
        )

    async def delete_server(self, email: str, server_id: str) -> None:
        user = await self.users.by_email(email)
        await self.keys.delete_server(user.account_id, server_id, actor=admin_actor())

    async def create_server(self, email: str, name: str) -> Created:
        user = await self.users.by_email(email)
        return await self.keys.create_server(user.account_id, name, actor=admin_actor())


@asynccontextmanager
async def open_admin(settings: Settings) -> AsyncIterator[Admin]:
    pool = await create_pool(settings.database_url.reveal(), maxsize=2)
    client = create_redis(settings.redis)
    try:
        yield Admin(pool, client, Keyspace(settings.redis_prefix), ReplicaWait.of(settings.redis))
    finally:
        await client.aclose()
        await close_pool(pool)
