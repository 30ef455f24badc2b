"""The invalidation protocol shared by its publishers (services) and subscribers (gateways).

The rules live here once: the channel, the event version, the bounds of a gateway's cache lease,
how long a publisher waits for a gateway that does not acknowledge, and the registry of
subscribed gateways in Redis. Why the wait makes "ended once the answer is sent" hold is argued
in `gateway.lease`.

The registry is a sorted set of gateway instance -> expiry, in milliseconds of the Redis server's
clock (one clock for everyone), with each instance's lease length beside it in a hash. A gateway
refreshes its entry while it is subscribed and never holds a lease past it (see `gateway.lease`).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from scout.events.v1 import invalidation_pb2 as events
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

KEYS_CHANNEL = "keys"
EVENT_VERSION = 1

DEFAULT_LEASE_SECONDS = 1.0
MIN_LEASE_SECONDS = 0.25
MAX_LEASE_SECONDS = 1.5
# A registration lasts this long in Redis unless refreshed.
REGISTRATION_SECONDS = 5.0
# How much slower than the publisher's clock a gateway's clock may run, with room to spare
# (quartz and NTP-disciplined clocks differ by parts per million).
CLOCK_RATE_MARGIN = 1.05
WAIT_MARGIN_SECONDS = 0.05
# The last part of a wait is polled (LPOP every POLL_SECONDS), not blocked: see _await_acks.
BLOCKING_SLACK_SECONDS = 0.15
POLL_SECONDS = 0.005
# How long an acknowledgement list lives if its publisher dies while waiting.
ACK_KEY_SECONDS = 30


def held_lease_seconds(wait_seconds: float) -> float:
    """The lease a gateway holds so that a change waits at most `wait_seconds` for it when it is
    silent (CACHE_LEASE_SECONDS): the inverse of provable_expiry."""
    return (wait_seconds - WAIT_MARGIN_SECONDS) / CLOCK_RATE_MARGIN


def provable_expiry(lease_seconds: float) -> float:
    """Seconds after Redis answered the PUBLISH of an event (so after it was delivered) by which
    any lease that a gateway holds without having applied it has run out (measured on the
    publisher's clock)."""
    return CLOCK_RATE_MARGIN * lease_seconds + WAIT_MARGIN_SECONDS


@dataclass(frozen=True)
class Registry:
    """The gateways that may hold a lease, in Redis under `keyspace`."""

    keyspace: Keyspace

    @property
    def _keys(self) -> list[str]:
        return [self.keyspace.key("gateways", "expiry"), self.keyspace.key("gateways", "lease")]

    async def register(self, client: aioredis.Redis, instance: str, lease_seconds: float) -> bool:
        """Add or refresh `instance` for REGISTRATION_SECONDS of the Redis clock. True when its
        entry was still live, i.e. every publisher since the last refresh waited for it."""
        continued = await client.eval(
            _REGISTER, 2, *self._keys, instance, int(REGISTRATION_SECONDS * 1000), lease_seconds
        )
        return bool(continued)

    async def deregister(self, client: aioredis.Redis, instance: str) -> None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys[0], instance)
            pipe.hdel(self._keys[1], instance)
            await pipe.execute()

    async def registered(self, client: aioredis.Redis) -> dict[str, float]:
        """Every registered instance and its lease length, after dropping expired entries."""
        return _leases(await client.eval(_LIST, 2, *self._keys))

    async def publish(
        self, client: aioredis.Redis, channel: str, message: bytes
    ) -> dict[str, float]:
        """PUBLISH `message`, then read the registry as `registered` does, in one script: one
        round trip, and the read certainly follows the publication (gateway.lease)."""
        return _leases(await client.eval(_PUBLISH, 2, *self._keys, channel, message))


def _leases(flat: list[object]) -> dict[str, float]:
    """The instance -> lease length pairs that _LIST returns flattened."""
    found: dict[str, float] = {}
    for instance, lease in zip(flat[::2], flat[1::2], strict=True):
        name = instance.decode() if isinstance(instance, bytes) else str(instance)
        try:
            found[name] = min(float(lease), MAX_LEASE_SECONDS)  # type: ignore[arg-type]
        except (TypeError, ValueError):  # no lease length recorded: assume the longest
            found[name] = MAX_LEASE_SECONDS
    return found


class Broadcaster:
    """Publishes invalidation events and waits until each provably took effect everywhere: every
    registered gateway acknowledged it, or `provable_expiry` of the longest lease among those
    that did not has passed since Redis answered its PUBLISH (the argument: gateway.lease)."""

    def __init__(self, client: aioredis.Redis, keyspace: Keyspace, instance: str) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._registry = Registry(keyspace)
        self._instance = instance

    async def broadcast(self, event: events.Invalidation) -> None:
        """Fill in the envelope of `event` (its `published_at` and what ended are the caller's),
        publish it and wait. Raises RedisError only if it could not be published."""
        event.version = EVENT_VERSION
        event.event_id = uuid.uuid4().hex
        event.instance = self._instance
        event.ack_key = self._keyspace.key("acks", event.event_id)
        waiting = await self._registry.publish(
            self._redis, self._keyspace.channel(KEYS_CHANNEL), event.SerializeToString()
        )
        # Every wait is measured from the answer, which certainly followed the delivery however
        # long the PUBLISH took to get there (the time before sending it would not: a stalled
        # publisher or Redis could deliver it later than any margin). time.monotonic, not the
        # event loop's clock, which uvloop reads once per iteration and to the millisecond.
        published_at = time.monotonic()
        # The acknowledgement list needs no cleaning up: every expected acknowledgement popped
        # leaves it empty, which Redis deletes, and each push of one (a late or unexpected one
        # included) gives it ACK_KEY_SECONDS to live (gateway.invalidation). Not deleting it
        # spares a change that waited out a silent gateway's lease one more round trip.
        try:
            await self._await_acks(event.ack_key, published_at, waiting)
        except redis.exceptions.RedisError as exc:
            # Published, but acknowledgements cannot be read: wait out the longest lease.
            log.warning("could not read acknowledgements of %s: %r", event.event_id, exc)
            waited = time.monotonic() - published_at
            await asyncio.sleep(max(0.0, provable_expiry(MAX_LEASE_SECONDS) - waited))

    async def _await_acks(
        self, ack_key: str, published_at: float, waiting: dict[str, float]
    ) -> None:
        """Pop acknowledgements from `ack_key` until `waiting` (instance -> lease) is empty or
        its leases have provably run out; what is left in `waiting` never acknowledged."""
        expected = len(waiting)
        while waiting:
            remaining = published_at + provable_expiry(max(waiting.values())) - time.monotonic()
            if remaining <= 0:
                break
            # Redis times out a blocked client only about every 100 ms (its `hz`): BLPOP blocks
            # until shortly before the deadline, and the rest is polled, so the wait ends on
            # time without ever abandoning a command half way (which would drop a connection).
            if remaining > BLOCKING_SLACK_SECONDS + 0.01:  # never a BLPOP timeout near 0 (forever)
                popped = await self._redis.blpop(
                    [ack_key], timeout=remaining - BLOCKING_SLACK_SECONDS
                )
                if popped is None:
                    continue  # the blocking part is over: poll until the deadline
                acked: object = popped[1]
            else:
                acked = await self._redis.lpop(ack_key)
                if acked is None:
                    await asyncio.sleep(min(remaining, POLL_SECONDS))
                    continue
            waiting.pop(_instance(acked), None)
            if waiting:
                # The others' acknowledgements mostly arrived meanwhile: all of them in one LPOP,
                # rather than a round trip each.
                for acked in await self._redis.lpop(ack_key, len(waiting)) or ():
                    waiting.pop(_instance(acked), None)
        if waiting:
            log.warning(
                "invalidation acknowledged by %d of %d gateways; the leases of the others have "
                "run out: %s",
                expected - len(waiting),
                expected,
                ", ".join(sorted(waiting)),
            )


def _instance(acked: object) -> str:
    return acked.decode(errors="replace") if isinstance(acked, bytes) else str(acked)


# Scripts read the Redis server's own clock, so no two machines' clocks are ever compared.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_REGISTER = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
local before = redis.call('ZSCORE', KEYS[1], ARGV[1])
local continued = 0
if before and tonumber(before) > now then continued = 1 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return continued
"""
)
_LIST_BODY = """
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  redis.call('HDEL', KEYS[2], unpack(gone))
end
local result = {}
for _, instance in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  result[#result + 1] = instance
  result[#result + 1] = redis.call('HGET', KEYS[2], instance)
end
return result
"""
_LIST = _NOW + _LIST_BODY
# ARGV: channel, message. The registry is read after the PUBLISH, in the same atomic script.
_PUBLISH = _NOW + "redis.call('PUBLISH', ARGV[1], ARGV[2])\n" + _LIST_BODY
