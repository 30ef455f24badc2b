"""Server-side sessions in Redis, stored under sha256(token), with a per-user index.

Keys (under the service's REDIS_PREFIX):
- `auth:session:<sha256 hex of the cookie token>`: a hash with the session's fields;
- `auth:user-sessions:<user id>`: a hash of public session id -> token hash, so a user's sessions
  can be listed and revoked without the tokens.

Expiry is decided here, against the injected Clock, on every read: the idle deadline slides with
use up to the absolute one. Redis TTLs only collect the garbage; a session past its deadline is
refused even if Redis still holds it.

Creating and ending a session wait for the replicas (`ReplicaWait`, REDIS_MIN_REPLICAS) before
answering: a session confirmed to the user, or a revocation confirmed, survives a Redis failover.
If the replicas do not confirm in time the call fails closed (NotReplicated: UNAVAILABLE) and the
client retries. A slid idle deadline is not waited for: losing one only shortens a session.
"""

from __future__ import annotations

import enum
import hashlib
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import redis.asyncio as aioredis

from auth_service.errors import SessionNotFound
from scout_kit.clock import Clock
from scout_kit.redis import Keyspace, ReplicaWait

# Seconds a key outlives its deadline in Redis, so our clock, not the TTL, decides expiry.
TTL_SLACK_SECONDS = 60
_TOKEN_FORMAT = re.compile(r"^[A-Za-z0-9_-]{43}$")  # token_urlsafe(32): 256 bits
_FIELD_LIMIT = 256

# Atomically: refuse a missing or expired session (deleting it), or slide its idle deadline.
# Atomic so that a touch can never resurrect a session revoked a moment before.
_VALIDATE_SCRIPT = """
local data = redis.call('HGETALL', KEYS[1])
if #data == 0 then return {0} end
local s = {}
for i = 1, #data, 2 do s[data[i]] = data[i + 1] end
local now = tonumber(ARGV[1])
local absolute = tonumber(s['absolute_expires_at'])
local idle = tonumber(s['idle_expires_at'])
if absolute == nil or idle == nil or now >= absolute or now >= idle then
  redis.call('DEL', KEYS[1])
  return {2, s['user_id'] or '', s['id'] or ''}
end
local new_idle = math.min(tonumber(ARGV[2]), absolute)
redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1],
  'idle_expires_at', string.format('%.0f', new_idle), 'client_address', ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil((new_idle - now) / 1000) + tonumber(ARGV[4]))
return {1, redis.call('HGETALL', KEYS[1])}
"""


# A use a gateway answered from its cache: slide the idle deadline from that moment (never past
# the absolute one, never for a session already past a deadline, never backwards). Atomic, so a
# use reported late can never resurrect a session ended meanwhile.
_TOUCH_SCRIPT = """
local fields = redis.call('HMGET', KEYS[1], 'idle_expires_at', 'absolute_expires_at')
local idle = tonumber(fields[1])
local absolute = tonumber(fields[2])
if idle == nil or absolute == nil then return 0 end
local now = tonumber(ARGV[1])
if now >= idle or now >= absolute then return 0 end
local used = math.min(tonumber(ARGV[2]), now)
local new_idle = math.min(used + tonumber(ARGV[3]), absolute)
if new_idle <= idle then return 0 end
redis.call('HSET', KEYS[1], 'last_seen_at', string.format('%.0f', used),
  'idle_expires_at', string.format('%.0f', new_idle), 'client_address', ARGV[4])
redis.call('EXPIRE', KEYS[1], math.ceil((new_idle - now) / 1000) + tonumber(ARGV[5]))
return 1
"""


@dataclass(frozen=True)
class SessionUse:
    digest: str  # sha256 of the token, hex
    used_at: datetime
    client_address: str


class SessionState(enum.Enum):
    VALID = "valid"
    NOT_FOUND = "not_found"
    EXPIRED = "expired"


@dataclass(frozen=True)
class SessionRecord:
    id: str
    user_id: str
    account_id: str
    email: str
    display_name: str
    user_created_at: datetime
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime
    idle_expires_at: datetime
    absolute_expires_at: datetime
    client_address: str
    user_agent: str

    def expired_at(self, now: datetime) -> bool:
        return now >= self.idle_expires_at or now >= self.absolute_expires_at


@dataclass(frozen=True)
class NewSession:
    """A session just created: the cookie token exists only here and in the response."""

    token: str
    record: SessionRecord


@dataclass(frozen=True)
class SessionValidation:
    state: SessionState
    session: SessionRecord | None = None


@dataclass(frozen=True)
class Ended:
    """Sessions just ended: how many were still alive, and the token digests (hex) of all that
    were ended, for the gateways' caches."""

    count: int
    digests: list[str]


@dataclass(frozen=True)
class SessionOwner:
    """Who a session is created for (a snapshot, so validation needs no database)."""

    user_id: str
    account_id: str
    email: str
    display_name: str
    created_at: datetime


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _from_ms(raw: bytes | str) -> datetime:
    return datetime.fromtimestamp(int(float(raw)) / 1000, UTC)


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    return raw.decode() if isinstance(raw, bytes) else raw


def _record(fields: Mapping[Any, Any]) -> SessionRecord | None:
    data = {_text(k): v for k, v in fields.items()}
    try:
        return SessionRecord(
            id=_text(data["id"]),
            user_id=_text(data["user_id"]),
            account_id=_text(data["account_id"]),
            email=_text(data["email"]),
            display_name=_text(data.get("display_name")),
            user_created_at=_from_ms(data["user_created_at"]),
            csrf_token=_text(data["csrf_token"]),
            created_at=_from_ms(data["created_at"]),
            last_seen_at=_from_ms(data["last_seen_at"]),
            idle_expires_at=_from_ms(data["idle_expires_at"]),
            absolute_expires_at=_from_ms(data["absolute_expires_at"]),
            client_address=_text(data.get("client_address")),
            user_agent=_text(data.get("user_agent")),
        )
    except (KeyError, ValueError):
        return None  # a partial or foreign hash is no session


def _pairs(flat: Sequence[Any]) -> dict[Any, Any]:
    return {flat[i]: flat[i + 1] for i in range(0, len(flat) - 1, 2)}


class SessionStore:
    def __init__(
        self,
        client: aioredis.Redis,
        keyspace: Keyspace,
        clock: Clock,
        *,
        idle_seconds: int = 1800,
        absolute_seconds: int = 43_200,
        replicas: ReplicaWait | None = None,
    ) -> None:
        self._redis = client
        self._keyspace = keyspace
        self._clock = clock
        self.idle_seconds = idle_seconds
        self.absolute_seconds = absolute_seconds
        self._validate = client.register_script(_VALIDATE_SCRIPT)
        self._touch = client.register_script(_TOUCH_SCRIPT)
        self._replicas = replicas or ReplicaWait()

    async def _replicated(self) -> None:
        await self._replicas.confirm(self._redis, self._keyspace.key("auth", "replication-barrier"))

    def _session_key(self, digest: str) -> str:
        return self._keyspace.key("auth", "session", digest)

    def _index_key(self, user_id: str) -> str:
        return self._keyspace.key("auth", "user-sessions", user_id)

    async def create(self, owner: SessionOwner, client_address: str, user_agent: str) -> NewSession:
        """A new session with a fresh 256-bit token; nothing the client sent is reused."""
        token = secrets.token_urlsafe(32)
        digest = token_digest(token)
        now = self._clock.now()
        now_ms = _ms(now)
        absolute_ms = now_ms + self.absolute_seconds * 1000
        idle_ms = min(now_ms + self.idle_seconds * 1000, absolute_ms)
        session_id = secrets.token_hex(16)
        fields = {
            "id": session_id,
            "user_id": owner.user_id,
            "account_id": owner.account_id,
            "email": owner.email,
            "display_name": owner.display_name,
            "user_created_at": str(_ms(owner.created_at)),
            "csrf_token": secrets.token_urlsafe(32),
            "created_at": str(now_ms),
            "last_seen_at": str(now_ms),
            "idle_expires_at": str(idle_ms),
            "absolute_expires_at": str(absolute_ms),
            "client_address": client_address[:_FIELD_LIMIT],
            "user_agent": user_agent[:_FIELD_LIMIT],
        }
        index = self._index_key(owner.user_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(self._session_key(digest), mapping=cast("Mapping[Any, Any]", fields))
            pipe.expire(self._session_key(digest), self.idle_seconds + TTL_SLACK_SECONDS)
            pipe.hset(index, session_id, digest)
            # The newest session lives longest, so its lifetime bounds the whole index.
            pipe.expire(index, self.absolute_seconds + TTL_SLACK_SECONDS)
            await pipe.execute()
        # Unconfirmed, the token is never handed out, so nobody can use it; its TTL collects it.
        await self._replicated()
        record = _record(fields)
        assert record is not None
        return NewSession(token, record)

    async def validate(self, token: str, client_address: str) -> SessionValidation:
        """The session behind a cookie token, its idle deadline slid forward by this use."""
        if not _TOKEN_FORMAT.match(token):
            return SessionValidation(SessionState.NOT_FOUND)
        now_ms = _ms(self._clock.now())
        reply = await self._validate(
            keys=[self._session_key(token_digest(token))],
            args=[
                str(now_ms),
                str(now_ms + self.idle_seconds * 1000),
                client_address[:_FIELD_LIMIT],
                TTL_SLACK_SECONDS,
            ],
        )
        outcome = int(reply[0])
        if outcome == 2:
            user_id, session_id = _text(reply[1]), _text(reply[2])
            if user_id and session_id:
                await self._redis.hdel(self._index_key(user_id), session_id)
            return SessionValidation(SessionState.EXPIRED)
        if outcome != 1:
            return SessionValidation(SessionState.NOT_FOUND)
        record = _record(_pairs(reply[1]))
        if record is None:
            return SessionValidation(SessionState.NOT_FOUND)
        return SessionValidation(SessionState.VALID, record)

    async def record_use(self, uses: Sequence[SessionUse]) -> int:
        """Slide the idle deadline of each session a gateway used from its cache; how many
        moved."""
        now_ms = _ms(self._clock.now())
        moved = 0
        for use in uses:
            moved += int(
                await self._touch(
                    keys=[self._session_key(use.digest)],
                    args=[
                        str(now_ms),
                        str(_ms(use.used_at)),
                        str(self.idle_seconds * 1000),
                        use.client_address[:_FIELD_LIMIT],
                        TTL_SLACK_SECONDS,
                    ],
                )
            )
        return moved

    async def delete_by_token(self, token: str) -> SessionRecord | None:
        """End the session behind a token (logout); None if there was none."""
        if not _TOKEN_FORMAT.match(token):
            return None
        key = self._session_key(token_digest(token))
        record = _record(await self._redis.hgetall(key))
        await self._redis.delete(key)
        if record is not None:
            await self._redis.hdel(self._index_key(record.user_id), record.id)
        await self._replicated()
        return record

    async def list_for_user(self, user_id: str) -> list[SessionRecord]:
        """The user's live sessions, newest first; dead index entries are pruned on the way."""
        index = self._index_key(user_id)
        entries = {_text(k): _text(v) for k, v in (await self._redis.hgetall(index)).items()}
        if not entries:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for digest in entries.values():
                pipe.hgetall(self._session_key(digest))
            replies = await pipe.execute()
        now = self._clock.now()
        live, dead = [], []
        for session_id, fields in zip(entries, replies, strict=True):
            record = _record(fields)
            if record is None or record.user_id != user_id or record.expired_at(now):
                dead.append(session_id)
            else:
                live.append(record)
        if dead:
            await self._redis.hdel(index, *dead)
        live.sort(key=lambda r: (r.created_at, r.id), reverse=True)
        return live

    async def revoke(self, user_id: str, session_id: str) -> str:
        """End one of the user's sessions and answer its token digest; SessionNotFound if the
        user has no such session."""
        index = self._index_key(user_id)
        digest = await self._redis.hget(index, session_id[:_FIELD_LIMIT])
        if digest is None:
            raise SessionNotFound()
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(self._session_key(_text(digest)))
            pipe.hdel(index, session_id)
            deleted, _ = await pipe.execute()
        await self._replicated()
        if not deleted:
            raise SessionNotFound()  # it had already expired
        return _text(digest)

    async def revoke_all(self, user_id: str, *, keep: str | None = None) -> Ended:
        """End every session of the user except `keep`."""
        index = self._index_key(user_id)
        entries = {_text(k): _text(v) for k, v in (await self._redis.hgetall(index)).items()}
        doomed = {sid: digest for sid, digest in entries.items() if sid != keep}
        if not doomed:
            return Ended(0, [])
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(self._session_key(digest) for digest in doomed.values()))
            pipe.hdel(index, *doomed)
            deleted, _ = await pipe.execute()
        await self._replicated()
        return Ended(int(deleted), list(doomed.values()))
