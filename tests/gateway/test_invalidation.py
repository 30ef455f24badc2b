"""The invalidation listener against a real Redis: what it applies, and every way it flushes."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis

from auth_service.events import RedisSessionEndPublisher
from gateway.invalidation import InvalidationListener, gateway_instance
from gateway.keycache import DeadKey, KeyCache
from gateway.lease import Lease
from gateway.sessioncache import SessionCache
from key_service.events import RedisInvalidationPublisher, ended_keys_event
from key_service.models import EndedKey
from scout.auth.v1 import auth_pb2
from scout.events.v1 import invalidation_pb2 as events
from scout_kit.clock import Clock, ManualClock, SystemClock
from scout_kit.identity import AuthMethod, Identity, PrincipalKind
from scout_kit.invalidation import KEYS_CHANNEL, Registry
from scout_kit.redis import Keyspace, RedisSettings, create_redis
from scout_kit.settings import Env
from scout_kit.tasks import cancel_and_wait
from tests.stack import Environment, StallingProxy, eventually, kill_client

DIGEST = hashlib.sha256(b"a key").digest()


@dataclass
class Listening:
    listener: InvalidationListener
    cache: KeyCache
    sessions: SessionCache
    redis: aioredis.Redis
    keyspace: Keyspace

    def put(self, digest: bytes = DIGEST) -> None:
        stored = self.cache.put(digest, "k1", "s1", "a1", started_generation=self.cache.generation)
        assert stored

    def put_session(self, digest: bytes) -> None:
        identity = Identity(PrincipalKind.USER, "u1", "a1", AuthMethod.SESSION, session_id="s")
        response = auth_pb2.ValidateSessionResponse(csrf_token="csrf")
        generation = self.sessions.generation
        assert self.sessions.put(
            digest, identity, response, started_generation=generation, valid_for=600
        )

    async def publish_raw(self, data: bytes) -> None:
        await self.redis.publish(self.keyspace.channel(KEYS_CHANNEL), data)

    def publisher(self) -> RedisInvalidationPublisher:
        return RedisInvalidationPublisher(self.redis, self.keyspace, "test-publisher")


@contextlib.asynccontextmanager
async def listening(
    env: Environment, clock: Clock, *, redis_url: str | None = None
) -> AsyncIterator[Listening]:
    # A key space of the test's own: no other gateway is in its registry.
    keyspace = Keyspace(f"{env.redis_prefix}:listener-{uuid.uuid4().hex[:8]}")
    instance = gateway_instance()
    where = RedisSettings.from_env(Env({"REDIS_URL": redis_url or env.redis_url}))
    subscriber = create_redis(where, reconnect=False, name=instance)
    client = create_redis(where)
    control = create_redis(RedisSettings.from_env(Env({"REDIS_URL": env.redis_url})))
    lease = Lease(clock, 1.0)
    cache = KeyCache(clock, 100, 60.0, lease)
    sessions = SessionCache(clock, 100, 60.0, lease)
    listener = InvalidationListener(instance, subscriber, client, keyspace, cache, sessions, clock)
    task = asyncio.create_task(listener.run())
    try:
        await eventually(lambda: cache.trusted)
        yield Listening(listener, cache, sessions, control, keyspace)
    finally:
        # As the gateway stops it: redis-py's read timeouts can swallow one cancellation.
        await cancel_and_wait(task)
        await listener.deregister()
        for redis_client in (subscriber, client, control):
            await redis_client.aclose()


def _ended(valid_until: datetime) -> EndedKey:
    return EndedKey("k1", DIGEST, "s1", "rotated", valid_until)


async def test_an_invalidation_is_applied_and_acknowledged(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        it.put()
        other = hashlib.sha256(b"another key").digest()
        it.put(other)
        now = datetime.now(UTC)
        await it.publisher().publish([_ended(now)], now)
        # The publisher returned: the listener has applied it.
        assert it.cache.get(DIGEST) is None
        assert it.cache.dead(DIGEST) == DeadKey("rotated", "k1")
        assert it.cache.get(other) is not None
        registered = await Registry(it.keyspace).registered(it.redis)
        assert set(registered) == {it.listener.instance}


async def test_a_grace_window_drops_the_key_without_refusing_it(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        it.put()
        now = datetime.now(UTC)
        await it.publisher().publish([_ended(now + timedelta(minutes=5))], now)
        assert it.cache.get(DIGEST) is None
        assert it.cache.dead(DIGEST) is None  # looked up again, and still valid a while


async def test_ended_sessions_are_dropped_and_acknowledged(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        ended, kept = hashlib.sha256(b"token 1").digest(), hashlib.sha256(b"token 2").digest()
        it.put_session(ended)
        it.put_session(kept)
        it.put()
        publisher = RedisSessionEndPublisher(it.redis, it.keyspace, "auth-test", SystemClock())
        await publisher.ended("u1", [ended.hex()])
        assert it.sessions.get(ended) is None
        assert it.sessions.get(kept) is not None
        assert it.cache.get(DIGEST) is not None  # the key cache is not touched


async def _flushed_by(it: Listening, data: bytes) -> None:
    it.put()
    it.put_session(hashlib.sha256(b"a token").digest())
    generation = it.cache.generation
    await it.publish_raw(data)
    await eventually(lambda: it.cache.generation != generation)
    assert len(it.cache) == 0 and len(it.sessions) == 0
    assert it.listener.subscribed.is_set()  # a bad message is no reason to resubscribe
    assert it.cache.trusted


async def test_a_malformed_message_flushes_the_cache(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        await _flushed_by(it, b"\xff{not protobuf")


async def test_an_unknown_version_flushes_and_is_acknowledged(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        ack_key = it.keyspace.key("acks", uuid.uuid4().hex)
        event = events.Invalidation(version=2, event_id="e", instance="newer", ack_key=ack_key)
        await _flushed_by(it, event.SerializeToString())
        acked = await it.redis.blpop([ack_key], timeout=5)
        assert acked is not None and acked[1] == it.listener.instance.encode()


async def test_an_event_of_an_unknown_kind_flushes_the_cache(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        # Version 1 but no `ended` this subscriber knows (a newer publisher's new kind).
        await _flushed_by(it, events.Invalidation(version=1, event_id="e").SerializeToString())


async def test_a_malformed_key_flushes_the_cache(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        now = datetime.now(UTC)
        bad = EndedKey("k1", b"short", "s1", "revoked", now)
        event = ended_keys_event([bad], now)
        event.version = 1
        await _flushed_by(it, event.SerializeToString())


async def test_a_malformed_session_flushes_the_cache(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        event = events.Invalidation(version=1, event_id="e")
        event.sessions.token_sha256.append(b"short")
        await _flushed_by(it, event.SerializeToString())


async def test_a_killed_subscription_flushes_then_resubscribes(env: Environment) -> None:
    async with listening(env, ManualClock()) as it:
        it.put()
        generation = it.cache.generation
        assert await kill_client(it.redis, it.listener.instance) == 1
        await eventually(lambda: it.cache.generation != generation)
        assert len(it.cache) == 0
        await eventually(lambda: it.listener.subscribed.is_set() and it.cache.trusted)
        # Applied again after resubscribing.
        it.put()
        now = datetime.now(UTC)
        await it.publisher().publish([_ended(now)], now)
        assert it.cache.dead(DIGEST) is not None


async def test_a_half_open_subscription_loses_the_lease_then_recovers(env: Environment) -> None:
    redis_port = int(env.redis_url.rsplit(":", 1)[1].split("/")[0])
    async with StallingProxy("127.0.0.1", redis_port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        async with listening(env, SystemClock(), redis_url=url) as it:
            it.put()
            generation = it.cache.generation
            proxy.stall()  # nothing gets through any more, and nothing is closed
            # The publisher cannot hear from the gateway: it waits out the lease, no longer.
            now = datetime.now(UTC)
            async with asyncio.timeout(5):
                await it.publisher().publish([_ended(now)], now)
            assert not it.cache.trusted
            assert it.cache.get(DIGEST) is None  # no lease: a miss, to the key service
            # The unanswered PING gives the connection up; a new one is leased again.
            await eventually(lambda: it.cache.generation != generation)
            await eventually(lambda: it.cache.trusted)
            assert len(it.cache) == 0


async def test_a_registration_says_whether_its_entry_had_lapsed(env: Environment) -> None:
    keyspace = Keyspace(f"{env.redis_prefix}:registry-{uuid.uuid4().hex[:8]}")
    registry = Registry(keyspace)
    client = create_redis(RedisSettings.from_env(Env({"REDIS_URL": env.redis_url})))
    try:
        assert await registry.register(client, "g1", 1.0) is False  # new
        assert await registry.register(client, "g1", 1.0) is True  # still live
        # Lapsed (its expiry passed) but not yet dropped by a publisher's read.
        await client.zadd(keyspace.key("gateways", "expiry"), {"g1": 1})
        assert await registry.register(client, "g1", 1.0) is False
        assert await registry.registered(client) == {"g1": 1.0}
        # A publisher's read drops a lapsed entry, in the same script as its PUBLISH.
        await client.zadd(keyspace.key("gateways", "expiry"), {"g1": 1})
        assert await registry.publish(client, keyspace.channel(KEYS_CHANNEL), b"x") == {}
    finally:
        await client.delete(keyspace.key("gateways", "expiry"), keyspace.key("gateways", "lease"))
        await client.aclose()
