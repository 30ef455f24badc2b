"""The invalidation outbox against real PostgreSQL and Redis: what a change could not publish is
kept with the change and published by any replica's relay, once."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from key_service.domain import KeyManager
from key_service.errors import InvalidationNotPublished
from key_service.events import RedisInvalidationPublisher
from key_service.outbox import DeliveredRows, InvalidationRelay
from key_service.repository import PostgresKeyRepository
from key_service.server import create_server
from key_service.settings import Settings
from scout.events.v1 import invalidation_pb2 as events
from scout.keys.v1 import keys_pb2, keys_pb2_grpc
from scout_admin.commands import Admin, admin_actor
from scout_kit.clock import SystemClock
from scout_kit.db import close_pool, create_pool
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer
from scout_kit.invalidation import KEYS_CHANNEL, Registry
from scout_kit.redis import RedisSettings, create_redis
from scout_kit.settings import Env
from scout_kit.tasks import cancel_and_wait
from tests.gateway.keys_support import ServerKey, new_server
from tests.stack import Environment


def _unreachable_redis() -> aioredis.Redis:
    with socket.socket() as sock:  # a port nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return create_redis(RedisSettings.from_env(Env({"REDIS_URL": f"redis://127.0.0.1:{port}/0"})))


@contextlib.asynccontextmanager
async def cut_off(admin: Admin) -> AsyncIterator[tuple[KeyManager, RedisInvalidationPublisher]]:
    """A key service replica that reaches PostgreSQL but not Redis, and its publisher."""
    client = _unreachable_redis()
    try:
        publisher = RedisInvalidationPublisher(client, admin.keyspace, "cut-off")
        yield KeyManager(PostgresKeyRepository(admin.pool), publisher, SystemClock()), publisher
    finally:
        await client.aclose()


@dataclass
class CutOffRotation:
    """A rotation committed by a replica cut off from Redis, which could not publish it."""

    server: ServerKey
    publisher: RedisInvalidationPublisher  # the cut-off replica's: it cannot publish either


@pytest.fixture
async def cut_off_rotation(admin: Admin) -> AsyncIterator[CutOffRotation]:
    """A new server whose key the cut-off replica rotated; the replica stays cut off until the
    test ends."""
    server = await new_server(admin)
    async with cut_off(admin) as (replica, publisher):
        with pytest.raises(InvalidationNotPublished):
            await replica.rotate_key(server.account_id, server.server_id, actor=admin_actor())
        yield CutOffRotation(server, publisher)


def relay(
    admin: Admin, after_seconds: float = 0.0, registry: CollectorRegistry | None = None
) -> InvalidationRelay:
    """Another replica's relay, which reaches both."""
    publisher = RedisInvalidationPublisher(admin.redis, admin.keyspace, "relay")
    return InvalidationRelay(
        PostgresKeyRepository(admin.pool),
        publisher,
        SystemClock(),
        after_seconds=after_seconds,
        registry=registry,
    )


async def queued(admin: Admin, server: ServerKey) -> list[tuple[str, str]]:
    async with admin.pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute(
            "SELECT reason, key_sha256 FROM keys.invalidation_outbox WHERE server_id = %s"
            " ORDER BY id",
            (server.server_id,),
        )
        return [(reason, bytes(digest).hex()) for reason, digest in await cur.fetchall()]


@contextlib.asynccontextmanager
async def published(admin: Admin) -> AsyncIterator[list[events.Invalidation]]:
    """Every invalidation published on the admin's key space while inside."""
    received: list[events.Invalidation] = []
    pubsub = admin.redis.pubsub()
    await pubsub.subscribe(admin.keyspace.channel(KEYS_CHANNEL))

    async def read() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                received.append(events.Invalidation.FromString(message["data"]))

    reader = asyncio.create_task(read())
    try:
        yield received
        await asyncio.sleep(0.1)  # what was published before the block ended arrives
    finally:
        await cancel_and_wait(reader)  # redis-py's reads can swallow one cancellation
        await pubsub.aclose()


def digest(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


def of(received: list[events.Invalidation], api_key: str) -> list[events.EndedKey]:
    """The ended keys published for `api_key`, as often as they were published."""
    return [k for e in received for k in e.keys.keys if k.key_sha256.hex() == digest(api_key)]


async def test_a_rotation_that_could_not_be_published_is_relayed_by_another_replica(
    admin: Admin, cut_off_rotation: CutOffRotation
) -> None:
    server = cut_off_rotation.server
    # Committed with the rotation: the old key waits in the outbox, in no process's memory.
    assert await queued(admin, server) == [("rotated", digest(server.api_key))]

    registry = CollectorRegistry()
    async with published(admin) as received:
        relayed = await relay(admin, registry=registry).relay_once()
        assert relayed >= 1  # the run's other tests may have left some
        await relay(admin).relay_once()
    assert registry.get_sample_value("scout_key_invalidations_relayed_total") == relayed
    [ended] = of(received, server.api_key)
    assert ended.reason == events.END_REASON_ROTATED
    [event] = [e for e in received if ended in e.keys.keys]
    assert ended.valid_until.ToDatetime() <= event.published_at.ToDatetime()  # refused outright
    assert await queued(admin, server) == []


async def test_a_change_that_was_published_leaves_nothing_behind(admin: Admin) -> None:
    server = await new_server(admin)
    async with published(admin) as received:
        await admin.keys.rotate_key(server.account_id, server.server_id, actor=admin_actor())
        await admin.keys.delete_server(server.account_id, server.server_id, actor=admin_actor())
    assert [k.reason for k in of(received, server.api_key)] == [events.END_REASON_ROTATED]
    assert len(received) == 2  # the rotation's and the deletion's
    assert await queued(admin, server) == []


async def test_a_fresh_row_is_left_to_the_change_that_wrote_it(admin: Admin) -> None:
    server = await new_server(admin)
    async with cut_off(admin) as (replica, _):
        with pytest.raises(InvalidationNotPublished):
            await replica.delete_server(server.account_id, server.server_id, actor=admin_actor())
    assert await relay(admin, after_seconds=60).relay_once() == 0
    assert await queued(admin, server) == [("revoked", digest(server.api_key))]


async def test_a_relay_that_cannot_publish_keeps_the_rows(
    admin: Admin, cut_off_rotation: CutOffRotation
) -> None:
    stuck = InvalidationRelay(
        PostgresKeyRepository(admin.pool),
        cut_off_rotation.publisher,
        SystemClock(),
        after_seconds=0,
    )
    with pytest.raises(InvalidationNotPublished):
        await stuck.relay_once()
    server = cut_off_rotation.server
    assert await queued(admin, server) == [("rotated", digest(server.api_key))]


async def test_two_relays_at_once_publish_a_row_once(
    admin: Admin, cut_off_rotation: CutOffRotation
) -> None:
    server = cut_off_rotation.server
    # A registered gateway that never acknowledges keeps the first relay waiting (its lease,
    # 0.25 s) while it holds the row; the second skips it instead of publishing it again.
    await Registry(admin.keyspace).register(admin.redis, "silent-gateway", 0.25)
    try:
        async with published(admin) as received:
            counts = await asyncio.gather(relay(admin).relay_once(), relay(admin).relay_once())
    finally:
        await Registry(admin.keyspace).deregister(admin.redis, "silent-gateway")
    assert 0 in counts and sum(counts) >= 1  # one took the rows, the other found them taken
    assert len(of(received, server.api_key)) == 1
    assert await queued(admin, server) == []


async def test_a_service_replica_deletes_published_rows_after_answering(admin: Admin) -> None:
    """The key service hands a published change's rows to DeliveredRows: the change answers
    before they are deleted, and they go as the background task runs."""
    server = await new_server(admin)
    repository = PostgresKeyRepository(admin.pool)
    delivered = DeliveredRows(repository)
    publisher = RedisInvalidationPublisher(admin.redis, admin.keyspace, "replica")
    replica = KeyManager(repository, publisher, SystemClock(), delivered.delivered)
    async with published(admin) as received:
        await replica.rotate_key(server.account_id, server.server_id, actor=admin_actor())
    assert of(received, server.api_key)  # published before the answer
    assert await queued(admin, server) == [("rotated", digest(server.api_key))]
    await delivered.flush()  # as a stopping service does
    assert await queued(admin, server) == []
    deleting = asyncio.create_task(delivered.run())
    try:
        await replica.rotate_key(server.account_id, server.server_id, actor=admin_actor())
        async with asyncio.timeout(5):
            while await queued(admin, server):  # noqa: ASYNC110 - rows in PostgreSQL
                await asyncio.sleep(0.01)
    finally:
        await cancel_and_wait(deleting)


async def test_the_key_service_leaves_no_published_rows_behind(
    env: Environment, admin: Admin
) -> None:
    """The real service wires DeliveredRows in: rotations over gRPC leave nothing for another
    replica's relay to publish again."""
    server = await new_server(admin)
    service = await create_server(Settings.from_env(env.service_env()))
    await service.start()
    try:
        user = Identity(PrincipalKind.USER, "u", server.account_id, AuthMethod.SESSION)
        token = TokenIssuer(env.jwt_private_pem, SystemClock()).token_for(user)
        async with env.service_channel(service.port) as channel:
            for _ in range(3):
                await keys_pb2_grpc.KeyServiceStub(channel).RotateKey(
                    keys_pb2.RotateKeyRequest(server_id=server.server_id),
                    metadata=(("authorization", f"Bearer {token}"),),
                )
    finally:
        await service.stop(0.5)
    assert await queued(admin, server) == []


async def test_a_stopping_replica_waits_for_the_delete_in_flight(
    admin: Admin, env: Environment
) -> None:
    """A stop flushes what is queued and then cancels the background task: a delete that task
    had in flight was cancelled with it and its rows were left for the relay to publish again
    (seen as a leftover row under load). The stop's flush now waits for it."""
    first, second = await new_server(admin), await new_server(admin)
    repository = PostgresKeyRepository(admin.pool)
    delivered = DeliveredRows(repository)
    publisher = RedisInvalidationPublisher(admin.redis, admin.keyspace, "stopping")
    replica = KeyManager(repository, publisher, SystemClock(), delivered.delivered)
    # A pool of its own for the lock holder, so the replica's delete never waits for a connection.
    locker = await create_pool(env.database_url, maxsize=2)
    try:
        async with locker.acquire() as conn, conn.cursor() as lock:
            # The first rotation's row is locked before the task starts, so its delete waits.
            await replica.rotate_key(first.account_id, first.server_id, actor=admin_actor())
            await lock.execute("BEGIN")
            await lock.execute(
                "SELECT id FROM keys.invalidation_outbox WHERE server_id = %s FOR UPDATE",
                (first.server_id,),
            )
            assert len(await lock.fetchall()) == 1
            deleting = asyncio.create_task(delivered.run())
            await eventually_waiting_on_a_lock(admin)
            await replica.rotate_key(second.account_id, second.server_id, actor=admin_actor())

            async def stop() -> None:  # as the service's resources stop: flush, then the task
                await delivered.flush()
                await cancel_and_wait(deleting)

            stopping = asyncio.create_task(stop())
            await asyncio.wait({stopping}, timeout=0.5)
            await lock.execute("COMMIT")
    finally:
        await close_pool(locker)
    await stopping
    assert await queued(admin, first) == []
    assert await queued(admin, second) == []


async def eventually_waiting_on_a_lock(admin: Admin) -> None:
    """Until a backend of this database waits on a row lock (the task's delete)."""
    async with asyncio.timeout(10), admin.pool.acquire() as conn, conn.cursor() as cur:
        while True:
            await cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock' AND query LIKE '%%invalidation_outbox%%'"
            )
            (waiting,) = await cur.fetchone()
            if waiting:
                return
            await asyncio.sleep(0.01)  # another backend's state: there is no event to wait on
