"""The one page parser of the API's listings: `limit`, `page_token` and an activity `type`
filter, with their bounds (which the OpenAPI document states and a test pins)."""

from __future__ import annotations

from aiohttp import web

from gateway.problems import Problem

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
