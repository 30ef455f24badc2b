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

from dataclasses import dataclass

import redis.asyncio as aioredis

from scout_kit.redis import Keyspace

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
# How long an acknowledgement list lives if its publisher dies while waiting.
ACK_KEY_SECONDS = 30


def provable_expiry(lease_seconds: float) -> float:
    """Seconds after a publisher sends an event by which any lease that a gateway holds without
    having applied it has run out (measured on the publisher's clock)."""
    return CLOCK_RATE_MARGIN * lease_seconds + WAIT_MARGIN_SECONDS


@dataclass(frozen=True)
class Registry:
    """The gateways that may hold a lease, in Redis under `keyspace`."""

    keyspace: Keyspace

    @property
    def _keys(self) -> list[str]:
        return [self.keyspace.key("gateways", "expiry"), self.keyspace.key("gateways", "lease")]

    async def register(self, client: aioredis.Redis, instance: str, lease_seconds: float) -> None:
        """Add or refresh `instance` for REGISTRATION_SECONDS of the Redis clock."""
        await client.eval(
            _REGISTER, 2, *self._keys, instance, int(REGISTRATION_SECONDS * 1000), lease_seconds
        )

    async def deregister(self, client: aioredis.Redis, instance: str) -> None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.zrem(self._keys[0], instance)
            pipe.hdel(self._keys[1], instance)
            await pipe.execute()

    async def registered(self, client: aioredis.Redis) -> dict[str, float]:
        """Every registered instance and its lease length, after dropping expired entries."""
        flat = await client.eval(_LIST, 2, *self._keys)
        found: dict[str, float] = {}
        for instance, lease in zip(flat[::2], flat[1::2], strict=True):
            name = instance.decode() if isinstance(instance, bytes) else str(instance)
            try:
                found[name] = min(float(lease), MAX_LEASE_SECONDS)
            except (TypeError, ValueError):  # no lease length recorded: assume the longest
                found[name] = MAX_LEASE_SECONDS
        return found


# Scripts read the Redis server's own clock, so no two machines' clocks are ever compared.
_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
_REGISTER = (
    _NOW
    + """
local ttl = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ttl)
redis.call('PEXPIRE', KEYS[2], ttl)
return now
"""
)
_LIST = (
    _NOW
    + """
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
)
