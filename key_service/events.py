"""Key invalidation events on Redis pub/sub, and waiting until they provably took effect.

A message is a `scout.events.v1.Invalidation` (protos/scout/events/v1/invalidation.proto) on the
channel `<prefix>:events:keys`. Every gateway drops those keys from its cache and then RPUSHes its
instance id onto the event's `ack_key`. The publisher returns once every gateway in the registry
has acknowledged, or once `provable_expiry` of the longest lease among those that have not has
passed since it sent the event: by then any lease such a gateway still holds followed the event
(gateway.lease states the invariant and argues it). That is what makes "invalid once the response
is sent" hold on every replica, paused or partitioned ones included: healthy gateways acknowledge
within a millisecond or two, and a silent one costs at most about the lease length.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import datetime
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions

from key_service.errors import InvalidationNotPublished
from key_service.models import EndedKey
from scout.events.v1 import invalidation_pb2 as events
from scout_kit.invalidation import (
    EVENT_VERSION,
    KEYS_CHANNEL,
    MAX_LEASE_SECONDS,
    Registry,
    provable_expiry,
)
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

_REASONS = {"rotated": events.END_REASON_ROTATED, "revoked": events.END_REASON_REVOKED}
# Keys whose invalidation could not be published wait here for the next publication. Beyond
# this many the oldest are dropped (and logged): a gateway's cache TTL still bounds them.
MAX_UNDELIVERED = 10_000


class InvalidationPublisher(Protocol):
    async def publish(self, ended: list[EndedKey], at: datetime) -> None:
        """Return once no gateway accepts `ended` beyond their deadlines; raise
        InvalidationNotPublished if that cannot be known (the change itself stays)."""
        ...


def encode(
    event_id: str, instance: str, ack_key: str, ended: list[EndedKey], at: datetime
) -> bytes:
    event = events.Invalidation(
        version=EVENT_VERSION, event_id=event_id, instance=instance, ack_key=ack_key
    )
    event.published_at.FromDatetime(at)
    for key in ended:
        item = event.keys.keys.add(
            key_sha256=key.key_sha256,
            key_id=key.key_id,
            server_id=key.server_id,
            reason=_REASONS.get(key.reason, events.END_REASON_UNSPECIFIED),
        )
        item.valid_until.FromDatetime(key.valid_until)
    return event.SerializeToString()


class RedisInvalidationPublisher:
    def __init__(self, client: aioredis.Redis, keyspace: Keyspace, instance: str) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._registry = Registry(keyspace)
        self._instance = instance
        self._undelivered: list[EndedKey] = []

    async def publish(self, ended: list[EndedKey], at: datetime) -> None:
        ended = [*self._undelivered, *ended]
        if not ended:
            return
        event_id = uuid.uuid4().hex
        ack_key = self._keyspace.key("acks", event_id)
        message = encode(event_id, self._instance, ack_key, ended, at)
        loop = asyncio.get_running_loop()
        sent_at = loop.time()  # before PUBLISH: every wait is measured from here
        try:
            await self._redis.publish(self._keyspace.channel(KEYS_CHANNEL), message)
        except redis.exceptions.RedisError as exc:
            self._keep_undelivered(ended)
            log.warning("could not publish key invalidation %s: %r", event_id, exc)
            raise InvalidationNotPublished() from None
        self._undelivered = []
        try:
            await self._await_acks(ack_key, sent_at)
        except redis.exceptions.RedisError as exc:
            # Published, but acknowledgements cannot be read: wait out the longest lease.
            log.warning("could not read acknowledgements of %s: %r", event_id, exc)
            waited = loop.time() - sent_at
            await asyncio.sleep(max(0.0, provable_expiry(MAX_LEASE_SECONDS) - waited))
        finally:
            with contextlib.suppress(redis.exceptions.RedisError):  # it expires by itself
                await self._redis.delete(ack_key)

    def _keep_undelivered(self, ended: list[EndedKey]) -> None:
        if len(ended) > MAX_UNDELIVERED:
            log.warning("dropping %d undelivered key invalidations", len(ended) - MAX_UNDELIVERED)
            ended = ended[-MAX_UNDELIVERED:]
        self._undelivered = ended

    async def _await_acks(self, ack_key: str, sent_at: float) -> None:
        loop = asyncio.get_running_loop()
        waiting = await self._registry.registered(self._redis)
        expected = len(waiting)
        while waiting:
            remaining = sent_at + provable_expiry(max(waiting.values())) - loop.time()
            if remaining <= 0:
                break
            # BLPOP's timeout 0 would mean forever.
            item = await self._redis.blpop([ack_key], timeout=max(remaining, 0.001))
            if item is None:
                break
            acked = item[1]
            waiting.pop(acked.decode(errors="replace") if isinstance(acked, bytes) else acked, None)
        if waiting:
            log.warning(
                "key invalidation acknowledged by %d of %d gateways; the leases of the others "
                "have run out: %s",
                expected - len(waiting),
                expected,
                ", ".join(sorted(waiting)),
            )
