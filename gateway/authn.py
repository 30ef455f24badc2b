"""Authenticating a request at the edge: an API key (X-API-Key) or a session cookie.

Only HTTPS requests reach this code; the plain-HTTP listener never looks at credentials.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from dataclasses import dataclass
from datetime import UTC
from typing import NoReturn

import grpc
from aiohttp import hdrs, web
from multidict import istr

from gateway.backends import Backends
from gateway.keycache import DeadKey, KeyCache
from gateway.leased_cache import Validations
from gateway.limiter import NOT_COUNTED, UnknownKeyLimiter
from gateway.problems import Problem, unauthorized
from gateway.sessioncache import SessionCache
from gateway.usage import KeyUsageRecorder, SessionUseRecorder
from scout.auth.v1 import auth_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.clock import Clock
from scout_kit.identity import AuthMethod, Identity, PrincipalKind

log = logging.getLogger(__name__)

# istr: multidict looks these up without case-folding them on every request.
API_KEY_HEADER = istr("X-API-Key")
_DEAD_REASONS = {
    keys_pb2.KEY_STATUS_ROTATED: "rotated",
    keys_pb2.KEY_STATUS_REVOKED: "revoked",
}
SESSION_COOKIE = "__Host-scout_session"
_KEY_FORMAT = re.compile(r"^[0-9a-fA-F]{64}$")


def session_cookie(request: web.Request, header: str) -> str | None:
    """The session cookie's value in `header` (the request's first Cookie header), or None.

    A plain `name=value; name=value` header, which is what browsers send, is split here: aiohttp's
    `request.cookies` (a SimpleCookie) costs more than the rest of a cached session check. A
    header with quotes or backslashes, which only its parser unquotes, goes to it, so both give
    the same value; as with it, the last of repeated session cookies wins. The header's text was
    already checked (gateway.middlewares.check_request_text)."""
    if '"' in header or "\\" in header:
        return request.cookies.get(SESSION_COOKIE)
    found = None
    for pair in header.split(";"):
        name, _, value = pair.partition("=")
        if name.strip() == SESSION_COOKIE:
            found = value.strip()
    return found


def _too_many_unknown_keys(retry_after: int) -> Problem:
    return Problem(
        429,
        "Too many unknown API keys",
        "Too many requests with unknown API keys came from this address.",
        type_="too-many-unknown-keys",
        headers={"Retry-After": str(retry_after)},
    )


@dataclass(frozen=True)
class Authenticated:
    identity: Identity
    # For cookie sessions: the CSRF token the session expects on unsafe methods.
    csrf_token: str | None = None
    session_token: str | None = None
    # For cookie sessions: the user and session as the auth service validated them.
    session: auth_pb2.ValidateSessionResponse | None = None


class Authenticator:
    def __init__(
        self,
        backends: Backends,
        cache: KeyCache,
        sessions: SessionCache,
        limiter: UnknownKeyLimiter,
        usage: KeyUsageRecorder,
        session_use: SessionUseRecorder,
        clock: Clock,
    ) -> None:
        self._backends = backends
        self._cache = cache
        self._sessions = sessions
        self._limiter = limiter
        self._usage = usage
        self._session_use = session_use
        self._clock = clock
        self._key_validations = Validations[keys_pb2.ValidateKeyResponse](cache)
        self._session_validations = Validations[auth_pb2.ValidateSessionResponse](sessions)

    async def authenticate(self, request: web.Request, client_address: str) -> Authenticated:
        headers = request.headers
        api_key = headers.get(API_KEY_HEADER)
        cookie_header = headers.get(hdrs.COOKIE)
        cookie = session_cookie(request, cookie_header) if cookie_header is not None else None
        if api_key is not None and cookie is not None:
            # Decided: one request, one principal. Guessing which one was meant would let a
            # stray cookie or header silently change who acts.
            raise Problem(
                400,
                "Ambiguous credentials",
                "Send either an X-API-Key header or a session cookie, not both.",
                type_="ambiguous-credentials",
            )
        if api_key is not None:
            return Authenticated(await self.authenticate_key(api_key, client_address))
        if cookie is not None:
            return await self.authenticate_session(cookie, client_address)
        raise unauthorized("Authentication required: send an X-API-Key header or sign in.")

    async def authenticate_key(self, api_key: str, client_address: str) -> Identity:
        if not _KEY_FORMAT.match(api_key):
            raise unauthorized(
                "The X-API-Key header must be exactly 64 hexadecimal characters.",
                "malformed-api-key",
            )
        digest = hashlib.sha256(api_key.lower().encode("ascii")).digest()
        cached = self._cache.get(digest)
        if cached is not None:
            self._usage.record(cached.key_id, client_address)
            return cached.identity
        dead = self._cache.dead(digest)
        if dead is not None:
            self._refuse_dead(dead, client_address)
        # Waiting for a validation of this key already in flight asks nothing new of the key
        # service: not a guess either.
        validation = self._key_validations.joinable(digest)
        lookup = NOT_COUNTED
        if validation is None:
            if not self._cache.seen_valid(digest):
                retry_after = self._limiter.retry_after(client_address)
                if retry_after is not None:
                    raise _too_many_unknown_keys(retry_after)
                lookup = await self._limiter.count_lookup(client_address)
                if lookup.retry_after is not None:
                    raise _too_many_unknown_keys(lookup.retry_after)
            validation = self._key_validations.start(digest, lambda: self._validate_key(digest))
        generation = validation.generation
        try:
            response = await asyncio.shield(validation.answer)
        except grpc.aio.AioRpcError:
            self._limiter.give_back(lookup)  # nothing was learnt about the key
            raise
        reason = _DEAD_REASONS.get(response.status, "not_found")
        if response.status == keys_pb2.KEY_STATUS_VALID or reason != "not_found":
            self._limiter.give_back(lookup)
        if response.status == keys_pb2.KEY_STATUS_VALID:
            valid_for = None
            if response.HasField("valid_until"):
                valid_until = response.valid_until.ToDatetime(tzinfo=UTC)
                valid_for = (valid_until - self._clock.now()).total_seconds()
            self._cache.put(
                digest,
                response.key_id,
                response.server_id,
                response.account_id,
                started_generation=generation,
                valid_for=valid_for,
            )
            self._usage.record(response.key_id, client_address)
            return Identity(
                PrincipalKind.SERVER, response.server_id, response.account_id, AuthMethod.API_KEY
            )
        dead = DeadKey(reason, response.key_id or None)
        self._cache.mark_dead(digest, dead)
        self._refuse_dead(dead, client_address)

    async def _validate_key(self, digest: bytes) -> keys_pb2.ValidateKeyResponse:
        response: keys_pb2.ValidateKeyResponse = await self._backends.keys.ValidateKey(
            keys_pb2.ValidateKeyRequest(key_sha256=digest),
            metadata=self._backends.service_metadata(),
            timeout=self._backends.timeout,
        )
        return response

    def _refuse_dead(self, dead: DeadKey, client_address: str) -> NoReturn:
        if dead.key_id is not None:
            self._usage.record_rejection(dead.key_id, client_address)
        if dead.reason == "rotated":
            raise unauthorized(
                "This API key was replaced when the server's key was regenerated: send the new "
                "key instead. For the scout agent, put it in SCOUTAPIKEY in its env file; it "
                "rereads the file before each send.",
                "api-key-rotated",
            )
        if dead.reason == "revoked":
            raise unauthorized("This API key has been revoked.", "api-key-revoked")
        raise unauthorized("Unknown API key.", "unknown-api-key")

    async def authenticate_session(self, token: str, client_address: str) -> Authenticated:
        # Only ASCII tokens can be valid (the auth service hashes the same bytes).
        if not token or len(token) > 200 or not token.isascii():
            raise unauthorized("Your session is not valid; sign in again.", "session-invalid")
        digest = hashlib.sha256(token.encode("ascii")).digest()
        cached = self._sessions.get(digest)
        if cached is not None:
            self._session_use.record(digest, client_address)
            return Authenticated(
                cached.identity,
                csrf_token=cached.response.csrf_token,
                session_token=token,
                session=cached.response,
            )
        validation = self._session_validations.joinable(digest)
        if validation is None:
            validation = self._session_validations.start(
                digest, lambda: self._validate_session(token, client_address)
            )
        generation = validation.generation
        try:
            response = await asyncio.shield(validation.answer)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise unauthorized(
                    "Your session is not valid; sign in again.", "session-invalid"
                ) from None
            raise
        if response.status != auth_pb2.SESSION_STATUS_VALID:
            detail = (
                "Your session has expired; sign in again."
                if response.status == auth_pb2.SESSION_STATUS_EXPIRED
                else "Your session is not valid; sign in again."
            )
            raise unauthorized(detail, "session-invalid")
        identity = Identity(
            PrincipalKind.USER,
            response.user.id,
            response.user.account_id,
            AuthMethod.SESSION,
            session_id=response.session.id,
        )
        deadline = min(
            response.session.idle_expires_at.ToDatetime(tzinfo=UTC),
            response.session.absolute_expires_at.ToDatetime(tzinfo=UTC),
        )
        self._sessions.put(
            digest,
            identity,
            response,
            started_generation=generation,
            valid_for=(deadline - self._clock.now()).total_seconds(),
        )
        return Authenticated(
            identity, csrf_token=response.csrf_token, session_token=token, session=response
        )

    async def _validate_session(
        self, token: str, client_address: str
    ) -> auth_pb2.ValidateSessionResponse:
        response: auth_pb2.ValidateSessionResponse = await self._backends.auth.ValidateSession(
            auth_pb2.ValidateSessionRequest(session_token=token, client_address=client_address),
            metadata=self._backends.service_metadata(),
            timeout=self._backends.timeout,
        )
        return response
