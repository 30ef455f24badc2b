"""What the key and the session caches share: an LRU of entries that expire, answered from only
while the gateway holds its lease (`gateway.lease`), checked on every read.

The generation counter closes the race where a validation is in flight while an invalidation
arrives: a result is stored only if no invalidation or flush happened since the validation
started (`started_generation`). The same rule lets concurrent misses share one validation
(`Validations`)."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

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
AnswerT = TypeVar("AnswerT")


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


@dataclass(frozen=True)
class Validation(Generic[AnswerT]):
    """A validation in flight: the cache's generation when it started, and its call."""

    generation: int
    answer: asyncio.Task[AnswerT]


class Validations(Generic[AnswerT]):
    """The validations in flight, by digest, so that concurrent misses of one key or session (an
    entry's TTL ended under load, a flush, a page's parallel requests) make one call, not one each.

    A request may wait for another's validation only where a cache entry stored when that
    validation started would still be answered: the lease is held and nothing was invalidated or
    flushed since (the generation is unchanged). An invalidation whose change was answered
    before this request arrived was applied by then (the change waited for this gateway's
    acknowledgement) and changed the generation; or the change waited out this gateway's lease
    instead, and then the lease is not held now, or was held again only after a PONG that came
    behind the invalidation (applied first: a new generation) or after a resubscription (a
    flush). Either way the request makes a call of its own, so a shared answer is never staler
    than the cache's (gateway.lease). The call runs as its own task: a caller that goes away
    (client gone, deadline) does not cancel the others' answer."""

    def __init__(self, cache: LeasedCache[Any, Any]) -> None:
        self._cache = cache
        self._in_flight: dict[bytes, Validation[AnswerT]] = {}

    def joinable(self, digest: bytes) -> Validation[AnswerT] | None:
        """The validation of `digest` this request may wait for instead of calling, if any."""
        found = self._in_flight.get(digest)
        cache = self._cache
        if found is None or found.generation != cache.generation or not cache.trusted:
            return None
        cache.stats.joined += 1
        return found

    def start(
        self, digest: bytes, call: Callable[[], Coroutine[Any, Any, AnswerT]]
    ) -> Validation[AnswerT]:
        """Run `call` as the validation of `digest`, joinable until it ends."""
        task = asyncio.create_task(call(), name="gateway-validation")
        started = Validation(self._cache.generation, task)
        self._in_flight[digest] = started

        def ended(_: asyncio.Future[AnswerT]) -> None:
            if self._in_flight.get(digest) is started:
                del self._in_flight[digest]
            if not task.cancelled():
                task.exception()  # every waiter may have gone: retrieved here too

        task.add_done_callback(ended)
        return started

    def __len__(self) -> int:
        return len(self._in_flight)
