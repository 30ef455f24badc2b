"""What the key and the session caches share: an LRU of entries that expire, answered from only
while the gateway holds its lease (`gateway.lease`), checked on every read.

The generation counter closes the race where a validation is in flight while an invalidation
arrives: a result is stored only if no invalidation or flush happened since the validation
started (`started_generation`)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from gateway.lease import Lease
from gateway.observability import CacheStats
from scout_kit.clock import Clock


class Expiring(Protocol):
    @property
    def expires_at(self) -> float:
        """When the entry stops being answered, on the clock's monotonic scale."""
        ...


EntryT = TypeVar("EntryT", bound=Expiring)
StatsT = TypeVar("StatsT", bound=CacheStats)


class LeasedCache(Generic[EntryT, StatsT]):
    def __init__(
        self, clock: Clock, max_entries: int, ttl_seconds: float, lease: Lease, stats: StatsT
    ) -> None:
        self._clock = clock
        self.lease = lease
        self.stats = stats
        self._max = max_entries
        self._ttl = ttl_seconds
        self._entries: OrderedDict[bytes, EntryT] = OrderedDict()
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

    def get(self, digest: bytes) -> EntryT | None:
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

    def _store(
        self,
        digest: bytes,
        entry_until: Callable[[float], EntryT],
        *,
        started_generation: int,
        valid_for: float | None,
    ) -> bool:
        """Store `entry_until(expiry)` for at most the TTL (and `valid_for`); refused if anything
        was invalidated since `started_generation` (the answer may predate the invalidation) or
        no lease is held."""
        if not self.lease.held() or started_generation != self._generation or self._max == 0:
            return False
        lifetime = self._ttl if valid_for is None else min(self._ttl, valid_for)
        if lifetime <= 0:
            return False
        self._entries[digest] = entry_until(self._clock.monotonic() + lifetime)
        self._entries.move_to_end(digest)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)
        return True

    def _drop(self, digests: list[bytes]) -> None:
        self._generation += 1
        for digest in digests:
            self._entries.pop(digest, None)

    def flush(self) -> None:
        self._generation += 1
        self._entries.clear()
        self.stats.flushes += 1
