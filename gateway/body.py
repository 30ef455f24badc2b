"""Reading and writing JSON bodies with clear problems for bad input."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.problems import Problem
from scout_kit.text import text_fault
from scout_kit.timestamps import format_time

DEFAULT_MAX_BODY = 64 * 1024
# No body of the API nests deeper than a few levels; this bound is checked before parsing, so
# no nesting reaches the parser's recursion.
MAX_JSON_DEPTH = 32
# A JSON string (possessive, so no input makes it backtrack; an unterminated one runs to the
# end) or a bracket: what the depth scan needs, in one linear pass.
_JSON_STRUCTURE = re.compile(rb'"(?:[^"\\]++|\\.|\\\Z)*+(?:"|\Z)|[\[\]{}]', re.DOTALL)


async def read_json_object(
    request: web.Request, max_bytes: int = DEFAULT_MAX_BODY
) -> dict[str, Any]:
    """The body as a JSON object; 415 for another media type or a content encoding, 413 when
    too large (checked as it streams in, whatever Content-Length says), 400 when not JSON or not
    an object. Only the metrics endpoint takes gzip bodies (handlers.metrics.read_body)."""
    if request.content_type != "application/json":
        raise Problem(
            415,
            "Unsupported Media Type",
            "Send the body as application/json.",
            type_="unsupported-media-type",
        )
    if request.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        raise Problem(
            415,
            "Unsupported Media Type",
            "This endpoint takes no Content-Encoding.",
            type_="unsupported-content-encoding",
        )
    too_large = Problem(
        413,
        "Content Too Large",
        f"The body must be at most {max_bytes} bytes.",
        type_="body-too-large",
    )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    parts: list[bytes] = []
    received = 0
    async for chunk in request.content.iter_any():
        received += len(chunk)
        if received > max_bytes:
            raise too_large
        parts.append(chunk)
    return parse_json_object(b"".join(parts))


def _invalid_json(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail, type_="invalid-json")


def _check_depth(raw: bytes) -> None:
    depth = 0
    for match in _JSON_STRUCTURE.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise _invalid_json(f"The body is nested more than {MAX_JSON_DEPTH} levels deep.")
        elif token in (b"]", b"}"):
            depth -= 1


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is outside what a double can hold")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_text(value: Any, pointer: str = "") -> None:
    """Every string and key is text the services can store (scout_kit.text)."""
    if isinstance(value, str):
        fault = text_fault(value)
        if fault is not None:
            raise _invalid_json(f"The string at {pointer or '/'} holds {fault}.")
    elif isinstance(value, dict):
        for key, item in value.items():
            fault = text_fault(key)
            where = f"{pointer}/{_pointer_token(key) if fault is None else '(key)'}"
            if fault is not None:
                raise _invalid_json(f"A key at {where} holds {fault}.")
            _check_text(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, f"{pointer}/{index}")


def _pointer_token(key: str) -> str:
    key = key.replace("~", "~0").replace("/", "~1")
    return key if len(key) <= 60 else key[:57] + "..."


def parse_json_object(raw: bytes, *, non_finite: bool = False) -> dict[str, Any]:
    """A JSON object whose depth, numbers and text every handler can take: 400 otherwise,
    naming what was wrong (never a quote of the body). `non_finite`: NaN, Infinity and numbers
    past a double are let through, for a caller that refuses them with a sharper answer."""
    _check_depth(raw)
    numbers: dict[str, Any] = {} if non_finite else {"parse_float": _finite}
    if not non_finite:
        numbers["parse_constant"] = _no_constant
    try:
        value = json.loads(raw, **numbers)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid_json(f"The body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _invalid_json("The body must be a JSON object.")
    _check_text(value)
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def iso(ts: Timestamp, present: bool = True) -> str | None:
    """RFC 3339 UTC text of a protobuf timestamp, or None when the field is unset."""
    if not present:
        return None
    return format_time(ts.ToDatetime())


def iso_datetime(moment: datetime) -> str:
    """RFC 3339 UTC text, milliseconds and `Z`: the one time format of the API, which
    scout_kit.timestamps.format_time writes for every service and command."""
    return format_time(moment)


MAX_PAGE_SIZE = 200
MAX_TYPE_FILTERS = 20


def page_params(request: web.Request) -> tuple[int, str]:
    """`limit` (1-200; 0 when absent: the service's default) and `page_token` of a listing."""
    raw = request.query.get("limit", "")
    if raw and (not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE):
        raise Problem(
            422,
            "Unprocessable Content",
            f"limit must be between 1 and {MAX_PAGE_SIZE}.",
            type_="invalid-parameter",
        )
    return int(raw or 0), request.query.get("page_token", "")


def type_filter(request: web.Request) -> list[str]:
    """`type` of an activity listing: event types, comma-separated or repeated (the service
    says which types exist and refuses others)."""
    types: list[str] = []
    for raw in request.query.getall("type", []):
        types.extend(t.strip() for t in raw.split(",") if t.strip())
    if len(types) > MAX_TYPE_FILTERS:
        raise Problem(
            422,
            "Unprocessable Content",
            f"type names at most {MAX_TYPE_FILTERS} event types.",
            type_="invalid-parameter",
        )
    return list(dict.fromkeys(types))


def activity_json(response: Any, specific: str) -> dict[str, Any]:
    """A page of activity events (keys' or sign-ins'), newest first; `specific` names the one
    field the two kinds do not share (`key_hint`, `user_agent`)."""
    return {
        "events": [
            {
                "id": e.id,
                "type": e.type,
                "occurred_at": iso(e.occurred_at),
                "actor": e.actor or None,
                "client_address": e.client_address or None,
                specific: getattr(e, specific) or None,
                "details": json.loads(e.details_json or "{}"),
            }
            for e in response.events
        ],
        "next_page_token": response.next_page_token or None,
    }
