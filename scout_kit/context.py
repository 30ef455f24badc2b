"""Per-request context carried through asyncio tasks: the request id and the caller's identity."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_METADATA = "x-request-id"
AUTHORIZATION_METADATA = "authorization"
# The end client's address as the gateway saw it, for activity logs and throttling.
CLIENT_ADDRESS_METADATA = "x-client-address"

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

request_id_var: ContextVar[str | None] = ContextVar("scout_request_id", default=None)
client_address_var: ContextVar[str] = ContextVar("scout_client_address", default="")


def new_request_id() -> str:
    # 128 random bits, as a uuid4 would carry, for a fraction of its cost.
    return os.urandom(16).hex()


def accept_request_id(candidate: str | None) -> str:
    """Keep a caller's request id when it is safe to log and echo, otherwise make a new one."""
    if candidate and _REQUEST_ID_RE.match(candidate):
        return candidate
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()


def current_client_address() -> str:
    return client_address_var.get()
