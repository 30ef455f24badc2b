"""Subscribes to key invalidations on Redis pub/sub and keeps the key cache honest.

Pub/sub delivers at most once, so the cache is trusted only while this listener is subscribed:
on any error the cache is flushed and distrusted; after (re)subscribing it is flushed again and
only then trusted. A ping on the subscription every few seconds notices a half-open connection.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions

from gateway.keycache import DeadKey, KeyCache
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

KEYS_CHANNEL = "keys"
SUPPORTED_VERSION = 1
PING_INTERVAL = 5.0
PING_TIMEOUT = 3.0


class InvalidationListener:
    def __init__(
        self,
        subscriber: aioredis.Redis,
        client: aioredis.Redis,
        keyspace: Keyspace,
        cache: KeyCache,
        on_applied: Callable[[datetime], None] | None = None,
    ) -> None:
        # `subscriber` must not reconnect by itself (see scout_kit.redis.create_redis).
        self._subscriber = subscriber
        self._redis = client
        self._keyspace = keyspace
        self._cache = cache
        self.instance = f"gateway-{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self.subscribed = asyncio.Event()
        self.invalidations_applied = 0
        # Told each applied invalidation's publication time (metrics: invalidation lag).
        self._on_applied = on_applied

    async def run(self) -> None:
        """Runs until cancelled, resubscribing with backoff."""
        backoff = 0.05
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                self._distrust()
                raise
            except (redis.exceptions.RedisError, OSError) as exc:
                if self.subscribed.is_set():
                    log.warning("key invalidation subscription lost: %r", exc)
            self._distrust()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    def _distrust(self) -> None:
        self._cache.trusted = False
        self._cache.flush()
        self.subscribed.clear()

    async def _listen(self) -> None:
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(self._keyspace.channel(KEYS_CHANNEL))
            # Wait for the subscribe confirmation: only then can no invalidation slip past.
            confirmation = await pubsub.get_message(timeout=PING_TIMEOUT)
            if confirmation is None or confirmation.get("type") != "subscribe":
                raise redis.exceptions.ConnectionError("no subscribe confirmation")
            self._cache.flush()
            self._cache.trusted = True
            self.subscribed.set()
            log.info("subscribed to key invalidations; key cache trusted")
            loop = asyncio.get_running_loop()
            last_ping = loop.time()
            awaiting_pong_since: float | None = None
            while True:
                message = await pubsub.get_message(timeout=1.0)
                now = loop.time()
                if message is not None:
                    awaiting_pong_since = None
                    if message["type"] == "message":
                        await self._apply(message["data"])
                    elif message["type"] == "subscribe":
                        # Only a silent reconnect resubscribes: messages may have been lost.
                        raise redis.exceptions.ConnectionError("subscription was re-established")
                if awaiting_pong_since is not None and now - awaiting_pong_since > PING_TIMEOUT:
                    raise redis.exceptions.ConnectionError("subscription ping timed out")
                if now - last_ping >= PING_INTERVAL:
                    await pubsub.ping()
                    last_ping = now
                    if awaiting_pong_since is None:
                        awaiting_pong_since = now
        finally:
            self._cache.trusted = False
            self._cache.flush()
            self.subscribed.clear()
            await pubsub.aclose()

    async def _apply(self, data: Any) -> None:
        try:
            message = json.loads(data)
            version = message["version"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed key invalidation message; flushing the key cache")
            self._cache.flush()
            return
        if version != SUPPORTED_VERSION:
            # A newer publisher we cannot read: the only safe answer is to forget everything.
            log.warning("unknown invalidation version %r; flushing the key cache", version)
            self._cache.flush()
        else:
            try:
                digests, dead = _parse_keys(message)
            except (ValueError, KeyError, TypeError):
                log.warning("malformed key in invalidation message; flushing the key cache")
                self._cache.flush()
            else:
                self._cache.invalidate(digests, dead)
                if self._on_applied is not None:
                    self._on_applied(datetime.fromisoformat(message["at"]))
        self.invalidations_applied += 1
        ack_key = message.get("ack_key")
        if isinstance(ack_key, str) and ack_key.startswith(self._keyspace.key("acks", "")):
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.rpush(ack_key, self.instance)
                    pipe.expire(ack_key, 30)
                    await pipe.execute()
            except redis.exceptions.RedisError as exc:
                log.warning("could not acknowledge key invalidation: %r", exc)


def _parse_keys(message: dict[str, Any]) -> tuple[list[bytes], dict[bytes, DeadKey]]:
    """The keys to drop, and those of them that are refused from now on (no grace window)."""
    at = datetime.fromisoformat(message["at"])
    digests: list[bytes] = []
    dead: dict[bytes, DeadKey] = {}
    for key in message.get("keys", ()):
        digest = bytes.fromhex(key["key_sha256"])
        digests.append(digest)
        if datetime.fromisoformat(key["valid_until"]) <= at:
            dead[digest] = DeadKey(str(key["reason"]), str(key["key_id"]))
    return digests, dead
