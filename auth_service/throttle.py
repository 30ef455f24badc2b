"""Failed-login throttling in Redis, shared by every replica, in sliding windows on our Clock.

Three counters, each a sorted set of failure times:
- per account and address: the tight limit a mistyping user or a single attacker meets first;
- per account (any address): the ASVS bound, at most 100 failures per hour on one account;
- per address (any account): credential stuffing from one place.

While any counter is at its limit the login is answered THROTTLED with the seconds until the
oldest failure that keeps it there leaves its window, without checking the password. Throttled
attempts are not counted, so waiting always ends the throttle: an attacker elsewhere can hold an
account back only by spending the account-wide budget, and never for more than its window.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass

import redis.asyncio as aioredis

from scout_kit.clock import Clock
from scout_kit.redis import Keyspace

TTL_SLACK_SECONDS = 60


@dataclass(frozen=True)
class Limit:
    scope: str
    failures: int
    window_seconds: int


@dataclass(frozen=True)
class ThrottlePolicy:
    account_address: Limit = Limit("account-address", 5, 300)
    account: Limit = Limit("account", 100, 3600)
    address: Limit = Limit("address", 50, 900)

    @property
    def limits(self) -> tuple[Limit, Limit, Limit]:
        return (self.account_address, self.account, self.address)


def _subject(*parts: str) -> str:
    # Hashed so that Redis keys never show who tried to sign in.
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:40]


class LoginThrottle:
    def __init__(
        self,
        client: aioredis.Redis,
        keyspace: Keyspace,
        clock: Clock,
        policy: ThrottlePolicy | None = None,
    ) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._clock = clock
        self.policy = policy or ThrottlePolicy()

    def _keys(self, email: str, address: str) -> list[tuple[Limit, str]]:
        account = email.strip().lower()
        address = address or "unknown"
        subjects = {
            self.policy.account_address.scope: _subject(account, address),
            self.policy.account.scope: _subject(account),
            self.policy.address.scope: _subject(address),
        }
        return [
            (
                limit,
                self._keyspace.key("auth", "login-failures", limit.scope, subjects[limit.scope]),
            )
            for limit in self.policy.limits
        ]

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds to wait before this login may be tried, or None if it may be tried now."""
        now = self._clock.now().timestamp()
        keys = self._keys(email, address)
        async with self._redis.pipeline(transaction=False) as pipe:
            for limit, key in keys:
                pipe.zremrangebyscore(key, "-inf", now - limit.window_seconds)
                pipe.zcard(key)
            replies = await pipe.execute()
        wait = 0.0
        for index, (limit, key) in enumerate(keys):
            count = int(replies[index * 2 + 1])
            if count < limit.failures:
                continue
            # The failure whose leaving brings the count below the limit.
            oldest = await self._redis.zrange(
                key, count - limit.failures, count - limit.failures, withscores=True
            )
            if oldest:
                wait = max(wait, float(oldest[0][1]) + limit.window_seconds - now)
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def record_failure(self, email: str, address: str) -> None:
        now = self._clock.now().timestamp()
        member = uuid.uuid4().hex
        async with self._redis.pipeline(transaction=True) as pipe:
            for limit, key in self._keys(email, address):
                pipe.zadd(key, {member: now})
                pipe.expire(key, limit.window_seconds + TTL_SLACK_SECONDS)
            await pipe.execute()

    async def record_success(self, email: str, address: str) -> None:
        """The user proved the password from this address: forget its failures there. The
        account-wide and address-wide counts stay, so a success does not reset an attack."""
        _, key = self._keys(email, address)[0]
        await self._redis.delete(key)
