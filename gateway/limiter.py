"""Counts unknown API keys per client address across every gateway replica (Redis)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import redis.asyncio as aioredis
import redis.exceptions

from scout_kit.clock import Clock
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

MAX_LOCAL_BLOCKS = 100_000
# The count's change and its expiry, atomically, in one command: EVALSHA of a script Redis keeps
# (a MULTI/INCR/EXPIRE/EXEC pipeline was four commands to send, queue and parse on every miss).
# KEYS[1]: the window's counter; ARGV[1]: +1 to count a lookup, -1 to give it back; ARGV[2]:
# its expiry in seconds (a DECR just after the window ended makes the key anew: it must expire).
_ADD_SCRIPT = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return count
"""


@dataclass(frozen=True)
class Lookup:
    """A key lookup counted in advance: `retry_after` set means it may not be made."""

    counter: str | None
    retry_after: int | None = None


# A lookup that was not counted (a key seen valid, or Redis could not count it): nothing to give
# back.
NOT_COUNTED = Lookup(None)


class UnknownKeyLimiter:
    """A fixed window per address, counted in Redis by every replica.

    A key lookup the cache cannot answer is counted (INCR) before the key service is asked, so
    a burst of new keys from one address, however parallel and on however many replicas, makes
    at most the limit of lookups per window; a lookup that finds a known key (valid, rotated,
    revoked) gives its count back, and a key this replica has seen valid is not counted at all
    (`KeyCache.seen_valid`), so a working agent is never slowed by this. Once the count is
    past the limit this replica also remembers the block until the window ends and answers 429
    without any call at all; another replica learns it from its own next INCR."""

    def __init__(
        self, client: aioredis.Redis, keyspace: Keyspace, clock: Clock, limit: int, window: int
    ) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._clock = clock
        self._limit = limit
        self._window = window
        self._blocked_until: dict[str, float] = {}
        self._add = client.register_script(_ADD_SCRIPT)
        self._giving_back: set[asyncio.Task[None]] = set()

    def retry_after(self, address: str) -> int | None:
        """Seconds to wait if the address is known to be over the limit, else None (no I/O)."""
        until = self._blocked_until.get(address)
        if until is None:
            return None
        remaining = until - self._clock.now().timestamp()
        if remaining <= 0:
            del self._blocked_until[address]
            return None
        return max(int(remaining + 0.999), 1)

    async def count_lookup(self, address: str) -> Lookup:
        """Count one lookup of a key this replica does not know, before it is made. If Redis
        cannot answer, the lookup goes ahead uncounted: the throttle degrades, authentication
        never does (an unknown key is still refused)."""
        now = int(self._clock.now().timestamp())
        start = now - now % self._window
        end = start + self._window
        key = self._keyspace.key("unknown-keys", address, str(start))
        try:
            count = await self._add(keys=[key], args=[1, end - now + 1])
        except redis.exceptions.RedisError as exc:
            log.warning("unknown-key limiter unavailable: %r", exc)
            return NOT_COUNTED
        if int(count) <= self._limit:
            return Lookup(key)
        if len(self._blocked_until) >= MAX_LOCAL_BLOCKS:
            self._prune()
        self._blocked_until[address] = float(end)
        return Lookup(None, max(end - now, 1))

    def give_back(self, lookup: Lookup) -> None:
        """`known`, off the answer's path: the request need not wait a Redis round trip for its
        count to be given back (a burst of known keys may be counted a few milliseconds longer)."""
        if lookup.counter is None:
            return
        task = asyncio.create_task(self.known(lookup), name="unknown-key-give-back")
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def close(self) -> None:
        """Wait for the counts being given back (each bounded by the Redis client's timeouts)."""
        while self._giving_back:
            await asyncio.gather(*self._giving_back, return_exceptions=True)

    async def known(self, lookup: Lookup) -> None:
        """The lookup found a key the key service knows (or failed): it was no unknown key."""
        if lookup.counter is None:
            return
        try:
            await self._add(keys=[lookup.counter], args=[-1, self._window + 1])
        except redis.exceptions.RedisError as exc:
            log.warning("unknown-key limiter could not give a lookup back: %r", exc)

    def _prune(self) -> None:
        now = self._clock.now().timestamp()
        for address in [a for a, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[address]
        while len(self._blocked_until) >= MAX_LOCAL_BLOCKS:
            self._blocked_until.pop(next(iter(self._blocked_until)))
