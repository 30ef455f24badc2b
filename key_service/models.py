"""Values the key service works with."""

from __future__ import annotations

import enum
import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime

KEY_BYTES = 32
HINT_LENGTH = 4


def generate_api_key() -> str:
    """32 bytes from the OS CSPRNG as 64 lowercase hex characters."""
    return secrets.token_hex(KEY_BYTES)


def key_digest(api_key: str) -> bytes:
    return hashlib.sha256(api_key.encode("ascii")).digest()


def key_hint(api_key: str) -> str:
    return api_key[-HINT_LENGTH:]


class ActivityType(enum.StrEnum):
    """What a server's activity log records (the `type` of an event)."""

    KEY_CREATED = "key.created"
    KEY_ROTATED = "key.rotated"
    KEY_REVOKED = "key.revoked"
    # One rolling event per key each, moved forward as use or rejected attempts continue.
    KEY_USED = "key.used"
    KEY_REJECTED = "key.rejected"
    SERVER_RENAMED = "server.renamed"
    SERVER_PAUSED = "server.paused"
    SERVER_RESUMED = "server.resumed"


class KeyStatus(enum.Enum):
    VALID = "valid"
    NOT_FOUND = "not_found"
    ROTATED = "rotated"
    REVOKED = "revoked"


@dataclass(frozen=True)
class KeyRecord:
    """A stored key as the status rule needs it (key_service.domain.key_status)."""

    key_id: str
    server_id: str
    account_id: str
    # None while the key is its server's current key; "rotated" or "revoked" once replaced.
    ended_reason: str | None
    # When an ended key stops being accepted (after a rotation's grace window, or at the end).
    valid_until: datetime | None


@dataclass(frozen=True)
class Validation:
    status: KeyStatus
    key_id: str | None = None
    server_id: str | None = None
    account_id: str | None = None
    valid_until: datetime | None = None


@dataclass(frozen=True)
class ServerRecord:
    id: str
    account_id: str
    name: str
    created_at: datetime
    key_hint: str
    key_created_at: datetime
    key_last_used_at: datetime | None
    key_last_used_address: str | None
    paused_at: datetime | None = None


@dataclass(frozen=True)
class ServerChange:
    """What a person changes about a server; None leaves that part as it is."""

    account_id: str
    server_id: str
    name: str | None = None
    paused: bool | None = None


@dataclass(frozen=True)
class EndedKey:
    """A key that a rotation or revocation just ended (to be invalidated on the gateways)."""

    key_id: str
    key_sha256: bytes
    server_id: str
    reason: str
    valid_until: datetime


@dataclass(frozen=True)
class Ended:
    """The keys a change ended, and their rows in the invalidation outbox (deleted once every
    gateway was told)."""

    keys: list[EndedKey]
    outbox_ids: tuple[int, ...]


@dataclass(frozen=True)
class KeyUsageReport:
    key_id: str
    last_used_at: datetime
    address: str
    count: int


@dataclass(frozen=True)
class KeyRejectionReport:
    key_id: str
    last_rejected_at: datetime
    address: str
    count: int


@dataclass(frozen=True)
class ActivityEvent:
    id: str
    type: str
    occurred_at: datetime
    actor: str
    client_address: str
    key_hint: str
    details: dict[str, object] = field(default_factory=dict)
