"""Reading and writing JSON bodies with clear problems for bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.problems import Problem

DEFAULT_MAX_BODY = 64 * 1024


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


def parse_json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400, "Bad Request", f"The body is not valid JSON: {exc}", type_="invalid-json"
        ) from None
    if not isinstance(value, dict):
        raise Problem(400, "Bad Request", "The body must be a JSON object.", type_="invalid-json")
    return value


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        status=status, body=json.dumps(data).encode(), content_type="application/json"
    )


def iso(ts: Timestamp, present: bool = True) -> str | None:
    """RFC 3339 UTC text of a protobuf timestamp, or None when the field is unset."""
    if not present:
        return None
    return iso_datetime(ts.ToDatetime(tzinfo=UTC))


def iso_datetime(moment: datetime) -> str:
    """RFC 3339 UTC text, milliseconds and `Z`: the one time format of the API."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


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
