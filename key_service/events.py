"""Key invalidation events on Redis pub/sub, and waiting for the gateways to acknowledge them.

A message is versioned JSON on the channel `<prefix>:events:keys`:

    {"version": 1, "type": "keys.invalidated", "event_id": "...", "instance": "...",
     "at": "<RFC 3339>", "ack_key": "<prefix>:acks:<event_id>",
     "keys": [{"key_sha256": "<hex>", "key_id": "...", "server_id": "...",
               "reason": "rotated|revoked", "valid_until": "<RFC 3339>"}]}

Every gateway drops those keys from its cache and then RPUSHes its instance id onto `ack_key`.
PUBLISH answers how many subscribers received the message; the publisher waits (boundedly) for
that many acknowledgements, which is what makes "invalid once the response is sent" hold on
every replica rather than eventually.
"""

from __future__ import annotations

import json
import logging
import uuid
from datetime import datetime
from typing import Protocol

import redis.asyncio as aioredis
import redis.exceptions

from key_service.models import EndedKey
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

EVENT_VERSION = 1
KEYS_CHANNEL = "keys"
INVALIDATED = "keys.invalidated"


class InvalidationPublisher(Protocol):
    async def publish(self, ended: list[EndedKey], at: datetime) -> None: ...


class RedisInvalidationPublisher:
    def __init__(
        self, client: aioredis.Redis, keyspace: Keyspace, instance: str, ack_timeout: float
    ) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._instance = instance
        self._ack_timeout = ack_timeout

    async def publish(self, ended: list[EndedKey], at: datetime) -> None:
        if not ended:
            return
        event_id = uuid.uuid4().hex
        ack_key = self._keyspace.key("acks", event_id)
        message = {
            "version": EVENT_VERSION,
            "type": INVALIDATED,
            "event_id": event_id,
            "instance": self._instance,
            "at": at.isoformat(),
            "ack_key": ack_key,
            "keys": [
                {
                    "key_sha256": key.key_sha256.hex(),
                    "key_id": key.key_id,
                    "server_id": key.server_id,
                    "reason": key.reason,
                    "valid_until": key.valid_until.isoformat(),
                }
                for key in ended
            ],
        }
        try:
            receivers = await self._redis.publish(
                self._keyspace.channel(KEYS_CHANNEL), json.dumps(message)
            )
            await self._await_acks(ack_key, int(receivers))
        except redis.exceptions.RedisError as exc:
            # The change is committed; gateways without a live subscription distrust their
            # caches, so a lost message cannot keep a dead key alive.
            log.warning("could not publish key invalidation %s: %r", event_id, exc)

    async def _await_acks(self, ack_key: str, expected: int) -> None:
        received = 0
        loop_deadline = _Deadline(self._ack_timeout)
        try:
            while received < expected:
                remaining = loop_deadline.remaining()
                if remaining <= 0:
                    break
                item = await self._redis.blpop([ack_key], timeout=remaining)
                if item is None:
                    break
                received += 1
        finally:
            await self._redis.delete(ack_key)
        if received < expected:
            log.warning(
                "key invalidation acknowledged by %d of %d gateways within %.1fs",
                received,
                expected,
                self._ack_timeout,
            )


class _Deadline:
    def __init__(self, seconds: float) -> None:
        import time

        self._clock = time.monotonic
        self._end = self._clock() + seconds

    def remaining(self) -> float:
        return self._end - self._clock()
