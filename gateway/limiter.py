"""Counts unknown API keys per client address across every gateway replica (Redis)."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
import redis.exceptions

from scout_kit.clock import Clock
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)

MAX_LOCAL_BLOCKS = 100_000


class UnknownKeyLimiter:
    """A fixed window per address, counted in Redis by every replica.

    Only a key the key service did not know is counted, so a working agent is never slowed by
    this. The count that INCR returns is global: once it reaches the limit, this replica also
    remembers the block until the window ends and answers 429 without any call at all; another
    replica learns it from its own next INCR. So the key service sees at most the limit plus one
    unknown key per replica per window from one address, and the request path does no Redis
    round trip before validating."""

    def __init__(
        self, client: aioredis.Redis, keyspace: Keyspace, clock: Clock, limit: int, window: int
    ) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._clock = clock
        self._limit = limit
        self._window = window
        self._blocked_until: dict[str, float] = {}

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

    async def record_unknown(self, address: str) -> int | None:
        """Count one unknown key; returns Retry-After seconds if the address is now past the
        limit. If Redis cannot answer, the request is refused as unknown anyway (401): the
        throttle degrades, authentication never does."""
        now = int(self._clock.now().timestamp())
        start = now - now % self._window
        end = start + self._window
        key = self._keyspace.key("unknown-keys", address, str(start))
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, end - now + 1)
                count, _ = await pipe.execute()
        except redis.exceptions.RedisError as exc:
            log.warning("unknown-key limiter unavailable: %r", exc)
            return None
        if int(count) >= self._limit:
            if len(self._blocked_until) >= MAX_LOCAL_BLOCKS:
                self._prune()
            self._blocked_until[address] = float(end)
        if int(count) > self._limit:
            return max(end - now, 1)
        return None

    def _prune(self) -> None:
        now = self._clock.now().timestamp()
        for address in [a for a, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[address]
        while len(self._blocked_until) >= MAX_LOCAL_BLOCKS:
            self._blocked_until.pop(next(iter(self._blocked_until)))
