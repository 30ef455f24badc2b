"""The auth service's parts wired to this run's PostgreSQL and Redis, on a drivable clock."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from auth_service.activity import ActivityLog
from auth_service.domain import Authentication
from auth_service.events import RedisSessionEndPublisher
from auth_service.passwords import Passwords
from auth_service.sessions import SessionStore
from auth_service.throttle import LoginThrottle
from auth_service.users import UserDirectory
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.redis import Keyspace


@dataclass
class Parts:
    clock: ManualClock
    redis: aioredis.Redis
    keyspace: Keyspace
    passwords: Passwords
    users: UserDirectory
    sessions: SessionStore
    throttle: LoginThrottle
    activity: ActivityLog
    ended: RedisSessionEndPublisher
    auth: Authentication


@pytest.fixture
def parts(admin: Admin, redis_prefix: str) -> Parts:
    """`admin` has migrated this run's database; each test gets its own corner of the key space
    (under the run's prefix, which the run removes at the end)."""
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    keyspace = Keyspace(f"{redis_prefix}:{uuid.uuid4().hex[:8]}")
    passwords = Passwords()
    users = UserDirectory(admin.pool, passwords, clock)
    sessions = SessionStore(admin.redis, keyspace, clock, idle_seconds=600, absolute_seconds=3600)
    throttle = LoginThrottle(admin.redis, keyspace, clock)
    activity = ActivityLog(admin.pool, clock)
    # Its own key space: no gateway is registered there, so publishing waits for nobody.
    ended = RedisSessionEndPublisher(admin.redis, keyspace, "auth-test", clock)
    auth = Authentication(users, passwords, sessions, throttle, activity, ended)
    return Parts(
        clock, admin.redis, keyspace, passwords, users, sessions, throttle, activity, ended, auth
    )
