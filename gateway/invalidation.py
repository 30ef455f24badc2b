"""Subscribes to invalidations on Redis pub/sub, applies them, and keeps the caches' lease.

Both caches (keys and sessions) live under the one lease and are flushed together.

Pub/sub delivers at most once, so the cache answers only under a lease (`gateway.lease`): every
PING_FRACTION of the lease length the listener sends a PING on the subscription connection and,
when its PONG arrives (after every message published before Redis handled the PING), renews the
lease from the moment the PING was sent. While subscribed it keeps its entry in the registry of
gateways fresh, and a lease never outlives that entry. On any error, an unanswered PING or a
resubscription, the lease is revoked and the cache flushed; after (re)subscribing it is flushed
again before any new lease.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions
from google.protobuf.message import DecodeError
from redis.asyncio.client import PubSub

from gateway.keycache import DeadKey, KeyCache
from gateway.lease import Lease
from gateway.sessioncache import SessionCache
from scout.events.v1 import invalidation_pb2 as events
from scout_kit.clock import Clock
from scout_kit.invalidation import (
    ACK_KEY_SECONDS,
    CLOCK_RATE_MARGIN,
    EVENT_VERSION,
    KEYS_CHANNEL,
    REGISTRATION_SECONDS,
    Registry,
)
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

# A PING every quarter of the lease keeps it held with three PONGs to spare.
PING_FRACTION = 0.25
# A PING unanswered for this many lease lengths means the connection is broken or half-open.
PONG_TIMEOUT_LEASES = 2.0
REGISTER_EVERY = REGISTRATION_SECONDS / 5
SUBSCRIBE_TIMEOUT = 3.0
_REASONS = {events.END_REASON_ROTATED: "rotated", events.END_REASON_REVOKED: "revoked"}
# An acknowledgement and the expiry of its list in one command (EVALSHA of a script Redis keeps),
# on the path of every change that waits for the gateways. KEYS[1]: the event's ack key;
# ARGV: this instance, the list's lifetime in seconds.
_ACKNOWLEDGE_SCRIPT = """
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
"""


class SubscriptionLost(redis.exceptions.ConnectionError):
    """The subscription can no longer prove it delivers everything (no PONG, resubscribed)."""


@dataclass
class _Ping:
    loop_time: float  # for the PONG timeout: the event loop's clock
    sent_at: float  # for the lease: the cache clock's monotonic time


def gateway_instance() -> str:
    """This replica's name in the registry, its acknowledgements and its Redis connections."""
    return f"gateway-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class InvalidationListener:
    def __init__(
        self,
        instance: str,
        subscriber: aioredis.Redis,
        client: aioredis.Redis,
        keyspace: Keyspace,
        cache: KeyCache,
        sessions: SessionCache,
        clock: Clock,
        on_applied: Callable[[datetime], None] | None = None,
    ) -> None:
        # `subscriber` must not reconnect by itself (see scout_kit.redis.create_redis).
        self._subscriber = subscriber
        self._redis = client
        self._keyspace = keyspace
        self._registry = Registry(keyspace)
        self._cache = cache
        self._sessions = sessions
        self._lease: Lease = cache.lease
        self._clock = clock
        self.instance = instance
        self.subscribed = asyncio.Event()
        self.invalidations_applied = 0
        # Told each applied invalidation's publication time (metrics: invalidation lag).
        self._on_applied = on_applied
        self._acknowledge_script = client.register_script(_ACKNOWLEDGE_SCRIPT)

    @property
    def lease_renewals(self) -> int:
        return self._lease.renewals

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
                    log.warning("invalidation subscription lost: %r", exc)
                    backoff = 0.05  # it worked until now: try again soon
                else:
                    backoff = min(backoff * 2, 2.0)
            self._distrust()
            await asyncio.sleep(backoff)

    async def deregister(self) -> None:
        """Leave the registry (on shutdown), so no publisher waits for this gateway."""
        try:
            await self._registry.deregister(self._redis, self.instance)
        except redis.exceptions.RedisError as exc:
            log.warning("could not leave the gateway registry: %r", exc)

    def _distrust(self) -> None:
        self._lease.revoke()
        self._flush()
        self.subscribed.clear()

    def _flush(self) -> None:
        self._cache.flush()
        self._sessions.flush()

    async def _listen(self) -> None:
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(self._keyspace.channel(KEYS_CHANNEL))
            # Wait for the subscribe confirmation: only then can no invalidation slip past.
            confirmation = await pubsub.get_message(timeout=SUBSCRIBE_TIMEOUT)
            if confirmation is None or confirmation.get("type") != "subscribe":
                raise SubscriptionLost("no subscribe confirmation")
            self._flush()
            await self._register()
            self.subscribed.set()
            log.info("subscribed to invalidations; the cache is used under its lease")
            await self._read(pubsub)
        finally:
            self._lease.revoke()
            self._flush()
            await pubsub.aclose()

    async def _register(self) -> None:
        sent_at = self._clock.monotonic()
        continued = await self._registry.register(self._redis, self.instance, self._lease.seconds)
        # Counted on our clock, which may run slower than Redis's.
        self._lease.registered(
            sent_at, REGISTRATION_SECONDS / CLOCK_RATE_MARGIN, continued=continued
        )

    async def _read(self, pubsub: PubSub) -> None:
        loop = asyncio.get_running_loop()
        interval = self._lease.seconds * PING_FRACTION
        pong_timeout = self._lease.seconds * PONG_TIMEOUT_LEASES
        pending: dict[bytes, _Ping] = {}  # in the order sent
        sequence = 0
        next_ping = loop.time()
        next_register = loop.time() + REGISTER_EVERY
        while True:
            now = loop.time()
            if now >= next_register:
                next_register = now + REGISTER_EVERY
                try:
                    await self._register()
                except redis.exceptions.RedisError as exc:
                    # The lease lapses by itself when the registration does.
                    log.warning("could not refresh the gateway registry: %r", exc)
            if now >= next_ping:
                sequence += 1
                token = b"lease-%d" % sequence
                pending[token] = _Ping(now, self._clock.monotonic())
                await pubsub.ping(token)
                next_ping = now + interval
            message = await pubsub.get_message(timeout=max(0.0, next_ping - loop.time()))
            if message is None:
                # Everything that had arrived has been read: an old PING is really unanswered.
                if pending and loop.time() - next(iter(pending.values())).loop_time > pong_timeout:
                    raise SubscriptionLost("subscription PING unanswered")
                continue
            kind = message["type"]
            if kind == "pong":
                self._answered(pending, message["data"])
            elif kind == "message":
                await self._apply(message["data"])
            elif kind == "subscribe":
                # Only a silent reconnect resubscribes: messages may have been lost.
                raise SubscriptionLost("subscription was re-established")

    def _answered(self, pending: dict[bytes, _Ping], token: Any) -> None:
        ping = pending.get(token)
        if ping is None:
            return  # not ours (a client library health check)
        # PONGs come in order: every PING before this one is answered or lost with it.
        while pending:
            oldest = next(iter(pending))
            del pending[oldest]
            if oldest == token:
                break
        self._lease.renew(ping.sent_at)

    async def _apply(self, data: Any) -> None:
        try:
            event = events.Invalidation.FromString(data)
        except (DecodeError, TypeError):
            log.warning("malformed invalidation message; flushing the cache")
            self._flush()
            self.invalidations_applied += 1
            return  # nothing to acknowledge: its ack key is unreadable too
        kind = event.WhichOneof("ended")
        if event.version != EVENT_VERSION or kind not in ("keys", "sessions"):
            # A newer publisher we cannot read: the only safe answer is to forget everything.
            log.warning(
                "unknown invalidation (version %d, %s); flushing the cache", event.version, kind
            )
            self._flush()
        else:
            try:
                if kind == "keys":
                    self._cache.invalidate(*_ended_keys(event))
                else:
                    self._sessions.invalidate(_ended_sessions(event))
            except ValueError:
                log.warning("malformed %s in invalidation message; flushing the cache", kind)
                self._flush()
            else:
                if self._on_applied is not None:
                    self._on_applied(event.published_at.ToDatetime(tzinfo=UTC))
        self.invalidations_applied += 1
        await self._acknowledge(event.ack_key)

    async def _acknowledge(self, ack_key: str) -> None:
        # Only into our own key space: a message cannot make us write elsewhere.
        if not ack_key.startswith(self._keyspace.key("acks", "")):
            return
        try:
            await self._acknowledge_script(keys=[ack_key], args=[self.instance, ACK_KEY_SECONDS])
        except redis.exceptions.RedisError as exc:
            log.warning("could not acknowledge an invalidation: %r", exc)


def _ended_keys(event: events.Invalidation) -> tuple[list[bytes], dict[bytes, DeadKey]]:
    """The keys to drop, and those of them that are refused from now on (no grace window)."""
    published_at = event.published_at.ToDatetime(tzinfo=UTC)
    digests: list[bytes] = []
    dead: dict[bytes, DeadKey] = {}
    for key in event.keys.keys:
        if len(key.key_sha256) != 32:
            raise ValueError("key_sha256 must be 32 bytes")
        digests.append(key.key_sha256)
        reason = _REASONS.get(key.reason)
        # An unknown reason only drops the key: it is looked up again on its next use.
        if reason is not None and key.valid_until.ToDatetime(tzinfo=UTC) <= published_at:
            dead[key.key_sha256] = DeadKey(reason, key.key_id or None)
    return digests, dead


def _ended_sessions(event: events.Invalidation) -> list[bytes]:
    digests = list(event.sessions.token_sha256)
    if any(len(digest) != 32 for digest in digests):
        raise ValueError("token_sha256 must be 32 bytes")
    return digests
