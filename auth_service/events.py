"""Session-end events, and waiting until they provably took effect on every gateway.

Logout, revoking a session, ending every other session (also at a password change) and disabling
a user publish a `scout.events.v1.Invalidation` with the ended sessions' token digests through
`scout_kit.invalidation.Broadcaster`, on the channel the key events use: a gateway's one lease
covers both of its caches (gateway.lease states the invariant and argues it).
"""

from __future__ import annotations

import logging
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions

from auth_service.errors import SessionEndNotPublished
from scout.events.v1 import invalidation_pb2 as events
from scout_kit.clock import Clock
from scout_kit.invalidation import Broadcaster
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

# Digests whose end could not be published wait here for the next publication (bounded: the
# gateways' session cache TTL still bounds the oldest).
MAX_UNDELIVERED = 10_000


class SessionEndPublisher(Protocol):
    async def ended(self, user_id: str, digests: list[str]) -> None:
        """Return once no gateway answers from a cache for these sessions (token sha256, hex);
        raise SessionEndNotPublished if that cannot be known (the sessions stay ended)."""
        ...


class RedisSessionEndPublisher:
    def __init__(
        self, client: aioredis.Redis, keyspace: Keyspace, instance: str, clock: Clock
    ) -> None:
        self._broadcaster = Broadcaster(client, keyspace, instance)
        self._clock = clock
        self._undelivered: list[str] = []

    async def ended(self, user_id: str, digests: list[str]) -> None:
        digests = [*self._undelivered, *digests]
        if not digests:
            return
        event = events.Invalidation()
        event.published_at.FromDatetime(self._clock.now())
        event.sessions.user_id = user_id
        event.sessions.token_sha256.extend(bytes.fromhex(d) for d in digests)
        try:
            await self._broadcaster.broadcast(event)
        except redis.exceptions.RedisError as exc:
            log.warning("could not publish the end of %d sessions: %r", len(digests), exc)
            self._undelivered = digests[-MAX_UNDELIVERED:]
            raise SessionEndNotPublished() from None
        self._undelivered = []
