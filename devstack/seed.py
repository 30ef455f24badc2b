"""Migrations and the demo account, user and server, made through scout-admin's own code.

The demo password and API key are kept in `<data-dir>/demo-credentials.json` (mode 0600) so every
run can print them. That is a development convenience only: the database stores the key's SHA-256
and the password's argon2id hash, never the secrets themselves.
"""

from __future__ import annotations

import json
import logging
import secrets
import string
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from auth_service.errors import UserNotFound
from devstack.jwt_keys import write_private
from key_service.domain import key_status
from key_service.models import KeyStatus, key_digest
from key_service.repository import PostgresKeyRepository
from scout_admin.commands import Admin, admin_actor, open_admin
from scout_admin.settings import Settings as AdminSettings
from scout_kit.timestamps import format_time

log = logging.getLogger("devstack")

DEMO_EMAIL = "demo@serverscout.local"
DEMO_ACCOUNT = "Demo account"
DEMO_SERVER = "demo-server"
CREDENTIALS_FILE = "demo-credentials.json"


@dataclass(frozen=True)
class DemoCredentials:
    email: str
    # None when the user exists but was made outside this data folder (another DATABASE_URL).
    password: str | None
    server_id: str | None = None
    server_name: str = DEMO_SERVER
    # None when the server exists but its key is not ours to show (rotated, or made elsewhere).
    api_key: str | None = None


@dataclass(frozen=True)
class SeedResult:
    credentials: DemoCredentials
    applied_migrations: list[str]
    created_user: bool
    created_server: bool
    rotated_key: bool


def load_credentials(path: Path) -> DemoCredentials | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if not isinstance(data, dict) or not isinstance(data.get("email"), str):
        return None
    return DemoCredentials(
        email=data["email"],
        password=_text_or_none(data.get("password")),
        server_id=_text_or_none(data.get("server_id")),
        server_name=_text_or_none(data.get("server_name")) or DEMO_SERVER,
        api_key=_text_or_none(data.get("api_key")),
    )


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def save_credentials(path: Path, credentials: DemoCredentials) -> None:
    document = asdict(credentials) | {
        "note": "development only: made by `make run`; delete it with the data folder",
        "updated_at": format_time(datetime.now(UTC)),
    }
    write_private(path, json.dumps(document, indent=2) + "\n")


_PASSWORD_ALPHABET = string.ascii_letters + string.digits


def new_password(length: int = 24) -> str:
    """Letters and digits from the OS CSPRNG (24 of them: about 143 bits), so a double-click
    selects the whole password and no shell quoting is needed."""
    return "".join(secrets.choice(_PASSWORD_ALPHABET) for _ in range(length))


async def seed_demo(settings: AdminSettings, path: Path, *, rotate_key: bool = False) -> SeedResult:
    """Migrate, then make the demo user and server unless they exist; returns what to print."""
    async with open_admin(settings) as admin:
        applied = await admin.migrate()
        return await _seed(admin, path, rotate_key=rotate_key, applied=applied)


async def _seed(admin: Admin, path: Path, *, rotate_key: bool, applied: list[str]) -> SeedResult:
    stored = load_credentials(path)
    credentials = stored or DemoCredentials(DEMO_EMAIL, new_password())
    created_user = created_server = rotated = False

    try:
        user = await admin.users.by_email(credentials.email)
        if stored is None:
            credentials = replace(credentials, password=None)
    except UserNotFound:
        password = credentials.password or new_password()
        user = await admin.create_user(credentials.email, password, DEMO_ACCOUNT)
        credentials = replace(credentials, password=password, server_id=None, api_key=None)
        created_user = True
        log.info("created demo user %s", user.email)

    servers, _ = await admin.keys.list_servers(user.account_id, size=200)
    server = next((s for s in servers if s.name == credentials.server_name), None)
    if server is None:
        created = await admin.create_server(user.email, credentials.server_name)
        credentials = replace(credentials, server_id=created.server.id, api_key=created.api_key)
        created_server = True
        log.info("created demo server %s (id %s)", created.server.name, created.server.id)
    elif rotate_key:
        result = await admin.keys.rotate_key(user.account_id, server.id, actor=admin_actor())
        credentials = replace(credentials, server_id=server.id, api_key=result.api_key)
        rotated = True
        log.info("rotated the API key of %s", server.name)
    else:
        key = credentials.api_key if credentials.server_id == server.id else None
        if key is not None and not await _key_is_current(admin, key, server.id):
            key = None
        credentials = replace(credentials, server_id=server.id, api_key=key)

    if credentials != stored:
        save_credentials(path, credentials)
    return SeedResult(credentials, applied, created_user, created_server, rotated)


async def _key_is_current(admin: Admin, api_key: str, server_id: str) -> bool:
    """Whether the stored key still authenticates the server (the key service's own rule)."""
    record = await PostgresKeyRepository(admin.pool).find_key(key_digest(api_key))
    validation = key_status(record, datetime.now(UTC))
    return validation.status is KeyStatus.VALID and validation.server_id == server_id
