"""The key service's use cases: servers, keys, rotation, revocation, validation, activity."""

from __future__ import annotations

import base64
import binascii
import logging
import unicodedata
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from key_service.errors import InvalidRequest, ServerNotFound
from key_service.events import InvalidationPublisher
from key_service.models import (
    ActivityEvent,
    ActivityType,
    Ended,
    KeyRecord,
    KeyRejectionReport,
    KeyStatus,
    KeyUsageReport,
    ServerChange,
    ServerRecord,
    Validation,
    generate_api_key,
    key_digest,
    key_hint,
)
from key_service.repository import KeyRepository
from scout_kit.clock import Clock
from scout_kit.filters import UnknownValues, known_values

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 100
MAX_GRACE_SECONDS = 86_400
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class Created:
    server: ServerRecord
    api_key: str


@dataclass(frozen=True)
class Rotated:
    server: ServerRecord
    api_key: str
    old_key_valid_until: datetime | None


def key_status(record: KeyRecord | None, now: datetime) -> Validation:
    """The one rule of whether a key is accepted at `now`: a server's current key is; a replaced
    key only until its `valid_until` (a rotation's grace window), then it is rotated or
    revoked for good; a key never stored is not found."""
    if record is None:
        return Validation(KeyStatus.NOT_FOUND)
    accepted = record.ended_reason is None or (
        record.valid_until is not None and record.valid_until > now
    )
    if accepted:
        status = KeyStatus.VALID
    elif record.ended_reason == "revoked":
        status = KeyStatus.REVOKED
    else:
        status = KeyStatus.ROTATED
    return Validation(
        status,
        record.key_id,
        record.server_id,
        record.account_id,
        record.valid_until if accepted else None,
    )


def validate_server_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidRequest("name must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidRequest(f"name must be at most {MAX_NAME_LENGTH} characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise InvalidRequest("name must not contain control characters")
    return name


def activity_types(requested: list[str]) -> list[str]:
    """The activity types a listing is filtered to (none: every type); unknown ones refused."""
    try:
        return known_values(requested, (t.value for t in ActivityType), "activity type")
    except UnknownValues as exc:
        raise InvalidRequest(str(exc)) from None


def parse_uuid(value: str) -> str:
    """A malformed id cannot name any server: callers see the same not-found as for a real miss."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError):
        raise ServerNotFound() from None


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidRequest("page_size must not be negative")
    return min(requested or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)


def encode_page_token(at: datetime, tiebreak: str | int) -> str:
    return base64.urlsafe_b64encode(f"{at.isoformat()}|{tiebreak}".encode()).decode()


def decode_page_token(token: str) -> tuple[datetime, str]:
    try:
        at_text, _, tiebreak = base64.urlsafe_b64decode(token.encode()).decode().partition("|")
        return datetime.fromisoformat(at_text), tiebreak
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidRequest("page_token is not valid") from None


# Told the outbox rows of each published change: their invalidation was published and waited
# for, so they may go.
OutboxRowsDelivered = Callable[[tuple[int, ...]], Awaitable[None]]


class KeyManager:
    def __init__(
        self,
        repository: KeyRepository,
        publisher: InvalidationPublisher,
        clock: Clock,
        delivered: OutboxRowsDelivered | None = None,
    ) -> None:
        """`delivered` takes the outbox rows of each published change (the service passes
        key_service.outbox.DeliveredRows, which deletes them in the background); by default each
        change deletes its own before it returns (scout-admin, a process that may exit right
        after)."""
        self._repo = repository
        self._publisher = publisher
        self._clock = clock
        self._delivered = delivered or repository.invalidations_delivered

    async def create_server(
        self, account_id: str, name: str, *, actor: str, address: str = ""
    ) -> Created:
        name = validate_server_name(name)
        api_key = generate_api_key()
        server = await self._repo.create_server(
            account_id=account_id,
            name=name,
            key_sha256=key_digest(api_key),
            hint=key_hint(api_key),
            actor=actor,
            address=address,
            now=self._clock.now(),
        )
        log.info("server created", extra={"server_id": server.id, "actor": actor})
        return Created(server, api_key)

    async def list_servers(
        self, account_id: str, *, only_server: str | None = None, size: int = 0, token: str = ""
    ) -> tuple[list[ServerRecord], str]:
        limit = page_size(size)
        after = decode_page_token(token) if token else None
        if only_server is not None:
            only_server = parse_uuid(only_server)
        if after is not None:
            after = (after[0], parse_uuid_or_invalid(after[1]))
        servers = await self._repo.list_servers(account_id, only_server, after, limit + 1)
        next_token = ""
        if len(servers) > limit:
            servers = servers[:limit]
            next_token = encode_page_token(servers[-1].created_at, servers[-1].id)
        return servers, next_token

    async def get_server(self, account_id: str, server_id: str) -> ServerRecord:
        return await self._repo.get_server(account_id, parse_uuid(server_id))

    async def delete_server(
        self, account_id: str, server_id: str, *, actor: str, address: str = ""
    ) -> None:
        now = self._clock.now()
        ended = await self._repo.delete_server(
            account_id=account_id,
            server_id=parse_uuid(server_id),
            actor=actor,
            address=address,
            now=now,
        )
        await self._tell_gateways(ended, now)
        log.info("server deleted, keys revoked", extra={"server_id": server_id, "actor": actor})

    async def update_server(
        self,
        account_id: str,
        server_id: str,
        *,
        name: str | None = None,
        paused: bool | None = None,
        actor: str,
        address: str = "",
    ) -> ServerRecord:
        """Rename a server, or pause or resume its monitoring."""
        if name is None and paused is None:
            raise InvalidRequest("nothing to change: give a name or paused")
        change = ServerChange(
            account_id,
            parse_uuid(server_id),
            None if name is None else validate_server_name(name),
            paused,
        )
        server = await self._repo.update_server(
            change, actor=actor, address=address, now=self._clock.now()
        )
        log.info("server updated", extra={"server_id": server.id, "actor": actor})
        return server

    async def rotate_key(
        self,
        account_id: str,
        server_id: str,
        *,
        grace_seconds: int = 0,
        actor: str,
        address: str = "",
    ) -> Rotated:
        if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
            raise InvalidRequest(f"grace_seconds must be between 0 and {MAX_GRACE_SECONDS}")
        api_key = generate_api_key()
        now = self._clock.now()
        grace_until = now + timedelta(seconds=grace_seconds)
        server, ended = await self._repo.rotate_key(
            account_id=account_id,
            server_id=parse_uuid(server_id),
            key_sha256=key_digest(api_key),
            hint=key_hint(api_key),
            actor=actor,
            address=address,
            now=now,
            grace_until=grace_until,
        )
        # Publish even with a grace window: gateways must learn the old key's new deadline.
        await self._tell_gateways(ended, now)
        log.info(
            "key rotated",
            extra={"server_id": server.id, "actor": actor, "grace_seconds": grace_seconds},
        )
        return Rotated(server, api_key, grace_until if grace_seconds else None)

    async def _tell_gateways(self, ended: Ended, now: datetime) -> None:
        """Publish and wait (InvalidationNotPublished if Redis is out of reach: the keys then
        stay in the outbox for the relay), then let their outbox rows go."""
        await self._publisher.publish(ended.keys, now)
        await self._delivered(ended.outbox_ids)

    async def validate(self, key_sha256: bytes) -> Validation:
        """A pure read: the gateway reports dead-key attempts in batches (record_usage)."""
        if len(key_sha256) != 32:
            raise InvalidRequest("key_sha256 must be 32 bytes")
        return key_status(await self._repo.find_key(key_sha256), self._clock.now())

    async def record_usage(
        self, usages: list[KeyUsageReport], rejections: list[KeyRejectionReport]
    ) -> None:
        if usages:
            await self._repo.record_usage(usages)
        if rejections:
            await self._repo.record_rejections(rejections)

    async def list_activity(
        self,
        account_id: str,
        server_id: str,
        *,
        size: int = 0,
        token: str = "",
        types: list[str] | None = None,
    ) -> tuple[list[ActivityEvent], str]:
        server_id = parse_uuid(server_id)
        limit = page_size(size)
        wanted = activity_types(types or [])
        before: tuple[datetime, int] | None = None
        if token:
            at, tiebreak = decode_page_token(token)
            if not tiebreak.isdigit():
                raise InvalidRequest("page_token is not valid")
            before = (at, int(tiebreak))
        # Raises ServerNotFound for a server of another account.
        await self._repo.get_server(account_id, server_id)
        events = await self._repo.list_activity(account_id, server_id, before, limit + 1, wanted)
        next_token = ""
        if len(events) > limit:
            events = events[:limit]
            next_token = encode_page_token(events[-1].occurred_at, events[-1].id)
        return events, next_token


def parse_uuid_or_invalid(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise InvalidRequest("page_token is not valid") from None
