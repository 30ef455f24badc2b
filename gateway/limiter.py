"""Counts unknown API keys per client address across every gateway replica (Redis)."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
import redis.exceptions

from scout_kit.clock import Clock
from scout_kit.redis import Keyspace

log = logging.getLogger(__name__)


class UnknownKeyLimiter:
    """A fixed window per address: past `limit` unknown keys the address waits for the window
    to end. Only unknown keys count, so a working agent is never slowed by this."""

    def __init__(
        self, client: aioredis.Redis, keyspace: Keyspace, clock: Clock, limit: int, window: int
    ) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._clock = clock
        self._limit = limit
        self._window = window

    def _slot(self, address: str) -> tuple[str, int]:
        now = int(self._clock.now().timestamp())
        start = now - now % self._window
        return self._keyspace.key("unknown-keys", address, str(start)), start + self._window - now

    async def retry_after(self, address: str) -> int | None:
        """Seconds to wait if the address is over the limit, else None. If Redis cannot answer,
        the key is still checked by the key service (authentication itself never fails open)."""
        key, remaining = self._slot(address)
        try:
            count = await self._redis.get(key)
        except redis.exceptions.RedisError as exc:
            log.warning("unknown-key limiter unavailable: %r", exc)
            return None
        if count is not None and int(count) >= self._limit:
            return max(remaining, 1)
        return None

    async def record_unknown(self, address: str) -> None:
        key, remaining = self._slot(address)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(key)
                pipe.expire(key, remaining + 1)
                await pipe.execute()
        except redis.exceptions.RedisError as exc:
            log.warning("unknown-key limiter unavailable: %r", exc)
