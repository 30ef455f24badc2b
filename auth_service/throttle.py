"""Failed-login throttling in Redis, shared by every replica, in sliding windows on our Clock.

Three counters, each a sorted set of attempt times:
- per account and address: the tight limit a mistyping user or a single attacker meets first;
- per account (any address): the ASVS bound, at most 100 failures per hour on one account;
- per address (any account): credential stuffing from one place.

An attempt is reserved before its password is verified, in one Lua script: if any counter is at
its limit the attempt is refused with the seconds until the oldest attempt that keeps it there
leaves its window, else it is counted in all three at once. So N parallel guesses, on any number
of replicas, are N attempts before any password is checked, and at most the limit are verified.
A failure keeps its reservation; a success (or an attempt that proved nothing, such as a
disabled user's) gives it back, and a success also forgets the failures from that address.
Refused attempts are not counted, so waiting always ends the throttle: an attacker elsewhere can
hold an account back only by spending the account-wide budget, and never for more than its
window.
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


# KEYS: the counters. ARGV: now, the attempt's member, "reserve" or "peek", a TTL slack, then
# (limit, window) per key. Returns nil when the attempt may go ahead (and, for "reserve", has
# been counted in every key), else the seconds to wait (a string: Lua numbers lose fractions).
_RESERVE_SCRIPT = """
local now = tonumber(ARGV[1])
local wait = 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[3 + 2 * i])
  local window = tonumber(ARGV[4 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    local oldest = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + window - now)
  end
end
if wait > 0 then
  return tostring(wait)
end
if ARGV[3] == 'reserve' then
  for i, key in ipairs(KEYS) do
    redis.call('ZADD', key, now, ARGV[2])
    redis.call('EXPIRE', key, tonumber(ARGV[4 + 2 * i]) + tonumber(ARGV[4]))
  end
end
return false
"""


@dataclass(frozen=True)
class Attempt:
    """A reserved sign-in attempt, or (retry_after set) one refused without being counted."""

    keys: tuple[str, ...]
    member: str
    retry_after: int | None = None


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
        self._reserve = client.register_script(_RESERVE_SCRIPT)

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

    async def _run(self, email: str, address: str, mode: str) -> Attempt:
        keys = self._keys(email, address)
        member = uuid.uuid4().hex
        args: list[str | int | float] = [self._clock.now().timestamp(), member, mode]
        args.append(TTL_SLACK_SECONDS)
        for limit, _ in keys:
            args += [limit.failures, limit.window_seconds]
        wait = await self._reserve(keys=[key for _, key in keys], args=args)
        retry_after = max(1, math.ceil(float(wait))) if wait is not None else None
        return Attempt(tuple(key for _, key in keys), member, retry_after)

    async def reserve(self, email: str, address: str) -> Attempt:
        """Count an attempt before its password is verified; `retry_after` is set (and nothing
        counted) when a limit is reached. Keep it as a failure, or call `succeeded`/`release`."""
        return await self._run(email, address, "reserve")

    async def retry_after(self, email: str, address: str) -> int | None:
        """Seconds to wait before this login may be tried, or None (counts nothing)."""
        return (await self._run(email, address, "peek")).retry_after

    async def release(self, attempt: Attempt) -> None:
        """The attempt proved nothing (it was not a wrong password): do not count it."""
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in attempt.keys:
                pipe.zrem(key, attempt.member)
            await pipe.execute()

    async def succeeded(self, attempt: Attempt) -> None:
        """The user proved the password from this address: forget its failures there. The
        account-wide and address-wide counts only lose this attempt, so a success does not
        reset an attack."""
        account_address, *wider = attempt.keys
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(account_address)
            for key in wider:
                pipe.zrem(key, attempt.member)
            await pipe.execute()
