"""The gateway's in-memory cache of validated sessions, under the same lease as the key cache.

A cookie request answered from here costs no call to the auth service. An entry lives at most
SESSION_CACHE_TTL_SECONDS and never past the session's idle or absolute deadline as the auth
service last reported them; every validation slides the idle deadline, so a session in use keeps
sliding (its recorded last use lags by at most the TTL). Ending a session (logout, revocation, a
password change, a disabled user) publishes its token digest, which drops the entry on every
replica before the change is answered (`gateway.lease`). The lease, the LRU and the
generation counter are `gateway.leased_cache`'s, shared with the key cache.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.lease import Lease
from gateway.leased_cache import LeasedCache
from gateway.observability import SessionCacheStats
from scout.auth.v1 import auth_pb2
from scout_kit.clock import Clock
from scout_kit.identity import Identity


@dataclass(frozen=True)
class CachedSession:
    identity: Identity
    response: auth_pb2.ValidateSessionResponse
    expires_at: float  # on the clock's monotonic scale


class SessionCache(LeasedCache[CachedSession, SessionCacheStats]):
    def __init__(
        self,
        clock: Clock,
        max_entries: int,
        ttl_seconds: float,
        lease: Lease,
        stats: SessionCacheStats | None = None,
    ) -> None:
        super().__init__(clock, max_entries, ttl_seconds, lease, stats or SessionCacheStats())

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
        seconds (the session's nearer deadline; see LeasedCache._store)."""
        return self._store(
            digest,
            lambda expires_at: CachedSession(identity, response, expires_at),
            started_generation=started_generation,
            valid_for=valid_for,
        )

    def invalidate(self, digests: list[bytes]) -> None:
        self._drop(digests)
