"""The gateway's in-memory cache of validated API keys.

Bounded in size (LRU) and in time (TTL, and never past a key's grace deadline). It is only a
cache: every replica can rebuild it from the key service, and it answers only while the gateway
holds its lease, checked on every read (`gateway.leased_cache`).

Dead keys (rotated, revoked, unknown) are remembered too, so an agent that was not updated is
answered without a call. That is safe whatever the subscription state: keys are random and a
dead key never becomes valid again.

So are the keys this replica has seen valid, past their entries' expiry and flushes, for one use
only: such a key's lookup is not an unknown key's and is not throttled (gateway.limiter). It still
goes to the key service. Without that, when a burst of requests missed the cache at once (an
entry's TTL ended under load, a lease lapsed, the cache was flushed), each of them counted as a
guess and a working agent, or a fleet behind one address, was refused 429.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import TypeVar

from gateway.lease import Lease
from gateway.leased_cache import LeasedCache
from gateway.observability import KeyCacheStats
from scout_kit.clock import Clock
from scout_kit.identity import AuthMethod, Identity, PrincipalKind

T = TypeVar("T")


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


class KeyCache(LeasedCache[CachedKey, KeyCacheStats]):
    def __init__(
        self,
        clock: Clock,
        max_entries: int,
        ttl_seconds: float,
        lease: Lease,
        stats: KeyCacheStats | None = None,
    ) -> None:
        super().__init__(clock, max_entries, ttl_seconds, lease, stats or KeyCacheStats())
        self._dead: OrderedDict[bytes, DeadKey] = OrderedDict()
        self._seen_valid: OrderedDict[bytes, None] = OrderedDict()

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
        """Store a validation that began at `started_generation` (see LeasedCache._store)."""
        self._remember(self._seen_valid, digest, None)
        identity = Identity(PrincipalKind.SERVER, server_id, account_id, AuthMethod.API_KEY)
        return self._store(
            digest,
            lambda expires_at: CachedKey(key_id, identity, expires_at),
            started_generation=started_generation,
            valid_for=valid_for,
        )

    def invalidate(self, digests: list[bytes], dead: dict[bytes, DeadKey] | None = None) -> None:
        """Drop these keys; those in `dead` are known to be refused from now on."""
        self._drop(digests)
        for digest, why in (dead or {}).items():
            self.mark_dead(digest, why)

    def mark_dead(self, digest: bytes, why: DeadKey) -> None:
        self._entries.pop(digest, None)
        self._seen_valid.pop(digest, None)
        self._remember(self._dead, digest, why)

    def _remember(self, found: OrderedDict[bytes, T], digest: bytes, value: T) -> None:
        """`digest` into an LRU bounded like the entries."""
        if self._max == 0:
            return
        found[digest] = value
        found.move_to_end(digest)
        while len(found) > self._max:
            found.popitem(last=False)

    def seen_valid(self, digest: bytes) -> bool:
        """Whether the key service has called this key valid to this replica (and no one since
        said it ended): not a guess, whatever the cache holds now."""
        return digest in self._seen_valid

    def dead(self, digest: bytes) -> DeadKey | None:
        found = self._dead.get(digest)
        if found is not None:
            self.stats.dead_key_hits += 1
        return found
