"""The key cache: bounded, expiring, used only under its lease, and immune to stale answers."""

from __future__ import annotations

import asyncio

import pytest

from gateway.keycache import DeadKey, KeyCache
from gateway.lease import Lease
from gateway.leased_cache import Validations
from scout_kit.clock import ManualClock


def _cache(size: int = 3, ttl: float = 60.0) -> tuple[KeyCache, ManualClock]:
    clock = ManualClock()
    cache = KeyCache(clock, size, ttl, Lease(clock, 1.0))
    _lease(cache, clock)
    return cache, clock


def _lease(cache: KeyCache, clock: ManualClock, seconds: float = 3600.0) -> None:
    """Registered and answered just now, for `seconds`."""
    cache.lease.revoke()
    cache.lease.seconds = seconds
    cache.lease.registered(clock.monotonic(), seconds)
    cache.lease.renew(clock.monotonic())


def _put(cache: KeyCache, digest: bytes, **kwargs: object) -> bool:
    generation = kwargs.pop("generation", cache.generation)
    return cache.put(digest, "k", "s", "a", started_generation=generation, **kwargs)  # type: ignore[arg-type]


def test_entries_expire_after_the_ttl() -> None:
    cache, clock = _cache(ttl=10)
    assert _put(cache, b"a")
    clock.advance(9.9)
    assert cache.get(b"a") is not None
    clock.advance(0.2)
    assert cache.get(b"a") is None


def test_a_grace_deadline_shortens_the_lifetime() -> None:
    cache, clock = _cache(ttl=60)
    assert _put(cache, b"a", valid_for=5.0)
    clock.advance(5.1)
    assert cache.get(b"a") is None
    assert not _put(cache, b"b", valid_for=-1.0)


def test_size_is_bounded_least_recently_used_first() -> None:
    cache, _ = _cache(size=2)
    _put(cache, b"a")
    _put(cache, b"b")
    assert cache.get(b"a") is not None  # a is now the most recent
    _put(cache, b"c")
    assert len(cache) == 2
    assert cache.get(b"b") is None and cache.get(b"a") is not None


def test_untrusted_cache_neither_answers_nor_stores() -> None:
    cache, _ = _cache()
    _put(cache, b"a")
    cache.lease.revoke()
    assert not cache.trusted
    assert cache.get(b"a") is None
    assert not _put(cache, b"b")


def test_the_lease_is_checked_on_every_read() -> None:
    cache, clock = _cache()
    _lease(cache, clock, seconds=1.0)
    assert _put(cache, b"a")
    clock.advance(0.99)
    assert cache.get(b"a") is not None
    clock.advance(0.02)  # e.g. the process was stopped: the lease ran out meanwhile
    assert cache.get(b"a") is None
    assert not _put(cache, b"b")
    assert cache.stats.bypassed == 1
    # A PONG for a PING sent before the pause brings nothing back.
    cache.lease.renew(clock.monotonic() - 1.5)
    assert cache.get(b"a") is None
    # A PONG that came after every message published meanwhile: the entry is good again.
    cache.lease.registered(clock.monotonic(), 5.0)
    cache.lease.renew(clock.monotonic())
    assert cache.get(b"a") is not None


def test_an_answer_that_began_before_an_invalidation_is_not_stored() -> None:
    cache, _ = _cache()
    started = cache.generation
    cache.invalidate([b"unrelated"])
    assert not _put(cache, b"a", generation=started)
    started = cache.generation
    cache.flush()
    assert not _put(cache, b"a", generation=started)
    assert _put(cache, b"a")


def test_dead_keys_are_remembered_and_bounded() -> None:
    cache, _ = _cache(size=2)
    _put(cache, b"a")
    cache.invalidate([b"a"], {b"a": DeadKey("rotated", "k1")})
    assert cache.get(b"a") is None
    assert cache.dead(b"a") == DeadKey("rotated", "k1")
    cache.mark_dead(b"b", DeadKey("not_found", None))
    cache.mark_dead(b"c", DeadKey("not_found", None))
    assert cache.dead(b"a") is None  # evicted: at most `size` dead keys
    cache.lease.revoke()
    assert cache.dead(b"c") is not None  # dead keys never come back, under a lease or not


def test_keys_seen_valid_outlive_entries_until_they_end() -> None:
    """Only the limiter asks: a key seen valid is not a guess once its entry expired, the cache
    was flushed or the lease lapsed, or when it was seen without a lease to store it under; it
    stops being one when it ends, and the set is bounded like the entries."""
    cache, clock = _cache(size=2, ttl=10.0)
    _put(cache, b"a")
    clock.advance(11.0)
    assert cache.get(b"a") is None
    cache.flush()
    cache.lease.revoke()
    assert _put(cache, b"b") is False  # no lease: not stored, but the key service said valid
    assert cache.seen_valid(b"a") and cache.seen_valid(b"b")
    assert not cache.seen_valid(b"c")
    cache.mark_dead(b"a", DeadKey("rotated", "k1"))
    assert not cache.seen_valid(b"a")
    _put(cache, b"c")
    _put(cache, b"d")
    assert not cache.seen_valid(b"b")  # evicted: at most `size` keys
    assert cache.seen_valid(b"c") and cache.seen_valid(b"d")


async def test_a_validation_in_flight_is_shared_only_while_a_cache_entry_would_be() -> None:
    cache, clock = _cache()
    validations = Validations[str](cache)
    release = asyncio.Event()

    async def validate() -> str:
        await release.wait()
        return "valid"

    started = validations.start(b"a", validate)
    assert validations.joinable(b"a") is started
    assert validations.joinable(b"b") is None
    assert cache.stats.joined == 1
    # Another key's invalidation changes the generation: what the call answers may predate it.
    cache.invalidate([b"z"])
    assert validations.joinable(b"a") is None
    # A later validation of the same key is joinable again, until the lease runs out.
    again = validations.start(b"a", validate)
    assert validations.joinable(b"a") is again
    clock.advance(3601)
    assert validations.joinable(b"a") is None
    _lease(cache, clock)
    assert validations.joinable(b"a") is again
    cache.flush()
    assert validations.joinable(b"a") is None
    release.set()
    assert [await started.answer, await again.answer] == ["valid", "valid"]
    await asyncio.sleep(0)  # the tasks' done callbacks
    assert len(validations) == 0  # ended: the next miss calls


async def test_a_failed_validation_fails_every_waiter_and_is_retrieved_without_one() -> None:
    cache, _ = _cache()
    validations = Validations[str](cache)

    async def unavailable() -> str:
        raise ConnectionError("key service down")

    shared = validations.start(b"a", unavailable)
    joined = validations.joinable(b"a")
    assert joined is shared
    for waiter in (shared, joined):
        with pytest.raises(ConnectionError):
            await asyncio.shield(waiter.answer)
    # Nobody waits for this one: its exception is retrieved when it ends, no "never retrieved".
    lonely = validations.start(b"b", unavailable)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert lonely.answer.done() and len(validations) == 0
    with pytest.raises(ConnectionError):
        lonely.answer.result()
