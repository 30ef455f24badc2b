"""The session cache: bounded, never past the session's deadlines, used only under the lease."""

from __future__ import annotations

from gateway.lease import Lease
from gateway.sessioncache import SessionCache
from scout.auth.v1 import auth_pb2
from scout_kit.clock import ManualClock
from scout_kit.identity import AuthMethod, Identity, PrincipalKind

IDENTITY = Identity(PrincipalKind.USER, "u1", "a1", AuthMethod.SESSION, session_id="s1")


def _cache(size: int = 3, ttl: float = 30.0) -> tuple[SessionCache, ManualClock]:
    clock = ManualClock()
    lease = Lease(clock, 3600.0)
    lease.registered(clock.monotonic(), 3600.0)
    lease.renew(clock.monotonic())
    return SessionCache(clock, size, ttl, lease), clock


def _put(cache: SessionCache, digest: bytes, valid_for: float = 600.0, **kwargs: int) -> bool:
    generation = kwargs.get("generation", cache.generation)
    response = auth_pb2.ValidateSessionResponse(csrf_token="c")
    return cache.put(digest, IDENTITY, response, started_generation=generation, valid_for=valid_for)


def test_an_entry_lives_the_ttl_at_most() -> None:
    cache, clock = _cache(ttl=30)
    assert _put(cache, b"a")
    clock.advance(29.9)
    hit = cache.get(b"a")
    assert hit is not None and hit.identity == IDENTITY and hit.response.csrf_token == "c"
    clock.advance(0.2)
    assert cache.get(b"a") is None


def test_never_past_the_sessions_nearer_deadline() -> None:
    cache, clock = _cache(ttl=30)
    assert _put(cache, b"a", valid_for=5.0)  # its idle or absolute deadline is 5 s away
    clock.advance(5.0)
    assert cache.get(b"a") is None
    assert not _put(cache, b"b", valid_for=0.0)


def test_no_lease_no_answer_and_nothing_stored() -> None:
    cache, _ = _cache()
    assert _put(cache, b"a")
    cache.lease.revoke()
    assert cache.get(b"a") is None
    assert not _put(cache, b"b")
    assert cache.stats.bypassed == 1


def test_an_answer_older_than_an_invalidation_is_not_stored() -> None:
    cache, _ = _cache()
    started = cache.generation
    cache.invalidate([b"other"])
    assert not _put(cache, b"a", generation=started)
    started = cache.generation
    cache.flush()
    assert not _put(cache, b"a", generation=started)


def test_ended_sessions_are_dropped_and_size_is_bounded() -> None:
    cache, _ = _cache(size=2)
    for digest in (b"a", b"b", b"c"):
        assert _put(cache, digest)
    assert len(cache) == 2 and cache.get(b"a") is None
    cache.invalidate([b"b"])
    assert cache.get(b"b") is None and cache.get(b"c") is not None


def test_size_zero_disables_the_cache() -> None:
    cache, _ = _cache(size=0)
    assert not _put(cache, b"a")
