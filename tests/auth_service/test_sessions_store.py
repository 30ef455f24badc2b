"""Sessions in Redis: stored under a hash of the token, expiry on our clock, per-user index."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from auth_service.errors import SessionNotFound
from auth_service.sessions import NewSession, SessionOwner, SessionState, SessionUse
from tests.auth_service.conftest import Parts

OWNER = SessionOwner(
    "6f1c1a52-4c1e-4d55-9d0c-2a8f5e0f9b11",
    "0a7c4e16-8d63-4a3c-b0e1-5d7b1f2c3a44",
    "someone@example.com",
    "Someone",
    datetime(2029, 6, 1, tzinfo=UTC),
)


async def _create(parts: Parts, owner: SessionOwner = OWNER) -> NewSession:
    return await parts.sessions.create(owner, "198.51.100.7", "test-agent")


async def test_redis_holds_only_a_hash_of_the_token(parts: Parts) -> None:
    created = await _create(parts)
    assert len(created.token) == 43  # token_urlsafe(32): 256 bits from the CSPRNG
    keys = [k.decode() async for k in parts.redis.scan_iter(match=f"{parts.keyspace.prefix}:*")]
    digest = hashlib.sha256(created.token.encode()).hexdigest()
    assert parts.keyspace.key("auth", "session", digest) in keys
    for key in keys:
        assert created.token not in key
        kind = await parts.redis.type(key)
        values = await parts.redis.hvals(key) if kind == b"hash" else [await parts.redis.get(key)]
        assert all(created.token.encode() not in (v or b"") for v in values)


async def test_idle_expiry_slides_until_the_absolute_deadline(parts: Parts) -> None:
    created = await _create(parts)
    token = created.token
    for _ in range(5):  # 5 x 590 s of steady use: past the idle time, within the absolute one
        parts.clock.advance(590)
        result = await parts.sessions.validate(token, "198.51.100.8")
        assert result.state is SessionState.VALID
    assert result.session is not None
    assert result.session.client_address == "198.51.100.8"
    assert result.session.last_seen_at == parts.clock.now()
    parts.clock.advance(600)
    assert (await parts.sessions.validate(token, "")).state is SessionState.EXPIRED
    assert (await parts.sessions.validate(token, "")).state is SessionState.NOT_FOUND
    assert await parts.sessions.list_for_user(OWNER.user_id) == []


async def test_absolute_expiry_is_enforced_even_while_redis_still_holds_the_key(
    parts: Parts,
) -> None:
    created = await _create(parts)
    for _ in range(6):
        parts.clock.advance(599)
        assert (await parts.sessions.validate(created.token, "")).state is SessionState.VALID
    parts.clock.advance(3600 - 6 * 599)
    # The TTL (real seconds) has not run out; the clock decides.
    assert (
        await parts.redis.ttl(
            parts.keyspace.key(
                "auth", "session", hashlib.sha256(created.token.encode()).hexdigest()
            )
        )
        > 0
    )
    assert (await parts.sessions.validate(created.token, "")).state is SessionState.EXPIRED


@pytest.mark.parametrize("token", ["", "short", "x" * 43 + "y", "!" * 43, "a" * 43])
async def test_malformed_or_unknown_tokens_are_not_found(parts: Parts, token: str) -> None:
    assert (await parts.sessions.validate(token, "")).state is SessionState.NOT_FOUND


async def test_list_revoke_and_revoke_all_but_one(parts: Parts) -> None:
    first, second, third = [await _create(parts) for _ in range(3)]
    parts.clock.advance(1)
    listed = await parts.sessions.list_for_user(OWNER.user_id)
    assert {s.id for s in listed} == {first.record.id, second.record.id, third.record.id}

    await parts.sessions.revoke(OWNER.user_id, second.record.id)
    assert (await parts.sessions.validate(second.token, "")).state is SessionState.NOT_FOUND
    with pytest.raises(SessionNotFound):
        await parts.sessions.revoke(OWNER.user_id, second.record.id)
    other_user = SessionOwner(
        "7e2d2b63-5d2f-4e66-8e1d-3b9f6f1a0c22", *list(vars(OWNER).values())[1:]
    )
    with pytest.raises(SessionNotFound):
        await parts.sessions.revoke(other_user.user_id, first.record.id)

    ended = await parts.sessions.revoke_all(OWNER.user_id, keep=first.record.id)
    assert ended.count == 1 and len(ended.digests) == 1
    assert (await parts.sessions.validate(third.token, "")).state is SessionState.NOT_FOUND
    assert (await parts.sessions.validate(first.token, "")).state is SessionState.VALID
    assert [s.id for s in await parts.sessions.list_for_user(OWNER.user_id)] == [first.record.id]


async def test_logout_deletes_by_token(parts: Parts) -> None:
    created = await _create(parts)
    ended = await parts.sessions.delete_by_token(created.token)
    assert ended is not None
    assert ended.id == created.record.id
    assert await parts.sessions.delete_by_token(created.token) is None
    assert await parts.sessions.list_for_user(OWNER.user_id) == []


def _use(created: NewSession, at: datetime) -> SessionUse:
    return SessionUse(hashlib.sha256(created.token.encode()).hexdigest(), at, "198.51.100.9")


async def test_a_reported_use_slides_the_idle_deadline_but_never_revives(parts: Parts) -> None:
    created = await _create(parts)  # idle 600 s, absolute 3600 s
    parts.clock.advance(500)
    used_at = parts.clock.now()
    assert await parts.sessions.record_use([_use(created, used_at)]) == 1
    parts.clock.advance(590)  # 1090 s after sign-in, 590 s after the reported use
    result = await parts.sessions.validate(created.token, "")
    assert result.state is SessionState.VALID
    assert result.session is not None and result.session.client_address == ""
    # An older use moves nothing back; a use reported after the session ended revives nothing.
    assert await parts.sessions.record_use([_use(created, used_at)]) == 0
    await parts.sessions.delete_by_token(created.token)
    assert await parts.sessions.record_use([_use(created, parts.clock.now())]) == 0
    assert (await parts.sessions.validate(created.token, "")).state is SessionState.NOT_FOUND


async def test_a_reported_use_never_passes_the_absolute_deadline(parts: Parts) -> None:
    created = await _create(parts)
    for _ in range(6):
        parts.clock.advance(599)
        await parts.sessions.record_use([_use(created, parts.clock.now())])
    parts.clock.advance(3600 - 6 * 599)
    assert await parts.sessions.record_use([_use(created, parts.clock.now())]) == 0
    assert (await parts.sessions.validate(created.token, "")).state is SessionState.EXPIRED
