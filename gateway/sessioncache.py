"""The gateway's in-memory cache of validated sessions, under the same lease as the key cache.

A cookie request answered from here costs no call to the auth service. An entry lives at most
SESSION_CACHE_TTL_SECONDS and never past the session's idle or absolute deadline as the auth
service last reported them; every validation slides the idle deadline, so a session in use keeps
sliding (its recorded last use lags by at most the TTL). Ending a session (logout, revocation, a
password change, a disabled user) publishes its token digest, which drops the entry on every
replica before the change is answered (`gateway.lease`). As in the key cache, the generation
counter keeps an answer fetched before an invalidation from being stored after it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gateway.lease import Lease
from gateway.observability import SessionCacheStats
from scout.auth.v1 import auth_pb2
from scout_kit.clock import Clock
from scout_kit.identity import Identity


@dataclass(frozen=True)
class CachedSession:
    identity: Identity
    response: auth_pb2.ValidateSessionResponse
    expires_at: float  # on the clock's monotonic scale


class SessionCache:
    def __init__(
        self,
        clock: Clock,
        max_entries: int,
        ttl_seconds: float,
        lease: Lease,
        stats: SessionCacheStats | None = None,
    ) -> None:
        self._clock = clock
        self.lease = lease
        self.stats = stats or SessionCacheStats()
        self._max = max_entries
        self._ttl = ttl_seconds
        self._entries: OrderedDict[bytes, CachedSession] = OrderedDict()
        self._generation = 0

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> CachedSession | None:
        if not self.lease.held():
            self.stats.bypassed += 1
            return None
        entry = self._entries.get(digest)
        if entry is None:
            self.stats.misses += 1
            return None
        if entry.expires_at <= self._clock.monotonic():
            del self._entries[digest]
            self.stats.misses += 1
            return None
        self._entries.move_to_end(digest)
        self.stats.hits += 1
        return entry

    def put(
        self,
        digest: bytes,
        identity: Identity,
        response: auth_pb2.ValidateSessionResponse,
        *,
        started_generation: int,
        valid_for: float,
    ) -> bool:
        """Store a validation that began at `started_generation`, for at most `valid_for`
        seconds (the session's nearer deadline); refused if anything was invalidated since or no
        lease is held."""
        if not self.lease.held() or started_generation != self._generation or self._max == 0:
            return False
        lifetime = min(self._ttl, valid_for)
        if lifetime <= 0:
            return False
        entry = CachedSession(identity, response, self._clock.monotonic() + lifetime)
        self._entries[digest] = entry
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    def invalidate(self, digests: list[bytes]) -> None:
        self._generation += 1
        for digest in digests:
            self._entries.pop(digest, None)

    def flush(self) -> None:
        self._generation += 1
        self._entries.clear()
        self.stats.flushes += 1
