"""Key invalidation events, and waiting until they provably took effect on every gateway.

A rotation, revocation or deletion publishes a `scout.events.v1.Invalidation` with the ended keys
(protos/scout/events/v1/invalidation.proto) through `scout_kit.invalidation.Broadcaster`, which
returns once every registered gateway acknowledged it or the lease of each that did not has
provably run out (gateway.lease states the invariant and argues it). That is what makes "invalid
once the response is sent" hold on every replica, paused or partitioned ones included.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions

from key_service.errors import InvalidationNotPublished
from key_service.models import EndedKey
from scout.events.v1 import invalidation_pb2 as events
from scout_kit.invalidation import Broadcaster
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

_REASONS = {"rotated": events.END_REASON_ROTATED, "revoked": events.END_REASON_REVOKED}


class InvalidationPublisher(Protocol):
    async def publish(self, ended: list[EndedKey], at: datetime) -> None:
        """Return once no gateway accepts `ended` beyond their deadlines; raise
        InvalidationNotPublished if that cannot be known (the change itself stays, and so do
        its rows in the outbox)."""
        ...


def ended_keys_event(ended: list[EndedKey], at: datetime) -> events.Invalidation:
    event = events.Invalidation()
    event.published_at.FromDatetime(at)
    for key in ended:
        item = event.keys.keys.add(
            key_sha256=key.key_sha256,
            key_id=key.key_id,
            server_id=key.server_id,
            reason=_REASONS.get(key.reason, events.END_REASON_UNSPECIFIED),
        )
        item.valid_until.FromDatetime(key.valid_until)
    return event


class RedisInvalidationPublisher:
    def __init__(self, client: aioredis.Redis, keyspace: Keyspace, instance: str) -> None:
        self._broadcaster = Broadcaster(client, keyspace, instance)

    async def publish(self, ended: list[EndedKey], at: datetime) -> None:
        if not ended:
            return
        try:
            await self._broadcaster.broadcast(ended_keys_event(ended, at))
        except redis.exceptions.RedisError as exc:
            # They stay in the outbox, for the relay (key_service.outbox).
            log.warning("could not publish the invalidation of %d keys: %r", len(ended), exc)
            raise InvalidationNotPublished() from None
