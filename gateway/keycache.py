"""The gateway's in-memory cache of validated API keys.

Bounded in size (LRU) and in time (TTL, and never past a key's grace deadline). It is only a
cache: every replica can rebuild it from the key service, and it answers only while the gateway
holds its lease (`gateway.lease`), checked on every read. The generation counter closes the race
where a validation is in flight while an invalidation arrives: a result is stored only if no
invalidation or flush happened since the validation started.

Dead keys (rotated, revoked, unknown) are remembered too, so an agent that was not updated is
answered without a call. That is safe whatever the subscription state: keys are random and a
dead key never becomes valid again.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gateway.lease import Lease
from gateway.observability import KeyCacheStats
from scout_kit.clock import Clock
from scout_kit.identity import AuthMethod, Identity, PrincipalKind


@dataclass(frozen=True)
class DeadKey:
    # "rotated", "revoked" or "not_found"
    reason: str
    key_id: str | None


@dataclass(frozen=True)
class CachedKey:
    key_id: str
    # Built once when cached: a cache hit allocates nothing.
    identity: Identity
    expires_at: float  # on the clock's monotonic scale


class KeyCache:
    def __init__(
        self,
        clock: Clock,
        max_entries: int,
        ttl_seconds: float,
        lease: Lease,
        stats: KeyCacheStats | None = None,
    ) -> None:
        self._clock = clock
        self.lease = lease
        self.stats = stats or KeyCacheStats()
        self._max = max_entries
        self._ttl = ttl_seconds
        self._entries: OrderedDict[bytes, CachedKey] = OrderedDict()
        self._dead: OrderedDict[bytes, DeadKey] = OrderedDict()
        self._generation = 0

    @property
    def trusted(self) -> bool:
        """Whether the cache may answer now: the gateway holds its lease."""
        return self.lease.held()

    @property
    def generation(self) -> int:
        return self._generation

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> CachedKey | None:
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
        key_id: str,
        server_id: str,
        account_id: str,
        *,
        started_generation: int,
        valid_for: float | None = None,
    ) -> bool:
        """Store a validation that began at `started_generation`; refuse it if anything was
        invalidated since (the answer may predate the invalidation) or no lease is held."""
        if not self.lease.held() or started_generation != self._generation or self._max == 0:
            return False
        lifetime = self._ttl if valid_for is None else min(self._ttl, valid_for)
        if lifetime <= 0:
            return False
        identity = Identity(PrincipalKind.SERVER, server_id, account_id, AuthMethod.API_KEY)
        self._entries[digest] = CachedKey(key_id, identity, self._clock.monotonic() + lifetime)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    def invalidate(self, digests: list[bytes], dead: dict[bytes, DeadKey] | None = None) -> None:
        """Drop these keys; those in `dead` are known to be refused from now on."""
        self._generation += 1
        for digest in digests:
            self._entries.pop(digest, None)
        for digest, why in (dead or {}).items():
            self.mark_dead(digest, why)

    def mark_dead(self, digest: bytes, why: DeadKey) -> None:
        self._entries.pop(digest, None)
        if self._max == 0:
            return
        self._dead[digest] = why
        self._dead.move_to_end(digest)
        while len(self._dead) > self._max:
            self._dead.popitem(last=False)

    def dead(self, digest: bytes) -> DeadKey | None:
        found = self._dead.get(digest)
        if found is not None:
            self.stats.dead_key_hits += 1
        return found

    def flush(self) -> None:
        self._generation += 1
        self._entries.clear()
        self.stats.flushes += 1
