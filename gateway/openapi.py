"""The OpenAPI 3.1 description of the whole public API, served at /api/v1/openapi.json.

Built from Python so the limits it states are the constants the handlers enforce. The test suite
keeps it true: every route the gateway serves is in it, and a property-based run against real
services finds no answer that breaks it.
"""

from __future__ import annotations

from typing import Any

from auth_service.activity import ActivityType as SignInActivityType
from gateway.body import MAX_TYPE_FILTERS
from gateway.handlers import metrics
from gateway.server_status import ServerStatus
from key_service.models import ActivityType as KeyActivityType
from scout_kit import sample_rules as rules
from scout_kit.text import URL_TEXT_PATTERN

JSON = "application/json"
PROBLEM = "application/problem+json"

Schema = dict[str, Any]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: Schema) -> Schema:
    return {"content": {JSON: {"schema": schema}}}


def _ok(description: str, schema: Schema | None = None, status: str = "200") -> dict[str, Any]:
    response: dict[str, Any] = {"description": description}
    if schema is not None:
        response.update(_json(schema))
    return {status: response}


def _problems(*statuses: int) -> dict[str, Any]:
    described = {
        400: "The request is malformed: not valid HTTP, text that is not UTF-8 in a header, "
        "cookie, path or query, or a body that is not JSON; the detail names the part.",
        401: "Missing, unknown or expired credentials.",
        403: "The credentials may not do this (or a CSRF check failed).",
        404: "No such resource visible to the caller.",
        409: "The request conflicts with the resource's state.",
        413: "The body is too large.",
        415: "Unsupported media type or content encoding.",
        422: "The request breaks a rule; the detail names it.",
        429: "Too many attempts; see Retry-After.",
        503: "A service is busy or unavailable; retry after Retry-After seconds.",
    }
    # Any request may be malformed (gateway.runner, middlewares.check_request_text).
    all_statuses = sorted({*statuses, 400, 500, 503} | ({401} if 401 in statuses else set()))
    return {
        str(status): {
            "description": described.get(status, "Something went wrong on our side."),
            "content": {PROBLEM: {"schema": _ref("Problem")}},
        }
        for status in all_statuses
    }


def _url_text(schema: Schema) -> Schema:
    """A path or query string schema: no control characters (middlewares.check_request_text)."""
    if schema.get("type") == "string" and "pattern" not in schema and "enum" not in schema:
        return {**schema, "pattern": URL_TEXT_PATTERN}
    return schema


def _path_id(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": _url_text({"type": "string"}),
    }


def _query(name: str, description: str, schema: Schema) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": _url_text(schema),
    }


PAGING = [
    _query("limit", "Page size, 1 to 200.", {"type": "string", "pattern": "^[0-9]{1,9}$"}),
    _query("page_token", "The next_page_token of the previous page.", {"type": "string"}),
]
SERVER_ID = _path_id("server_id", "The server's id (a UUID).")


def _type_filter(types: list[str]) -> Schema:
    return _query(
        "type",
        f"Only events of these types, comma-separated (at most {MAX_TYPE_FILTERS}): "
        + ", ".join(types)
        + ".",
        {"type": "string"},
    )


KEY_ACTIVITY_FILTER = _type_filter([t.value for t in KeyActivityType])
SIGN_IN_ACTIVITY_FILTER = _type_filter([t.value for t in SignInActivityType])
TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
CALLER: list[dict[str, list[str]]] = [{"apiKey": []}, {"session": []}]
SESSION_ONLY: list[dict[str, list[str]]] = [{"session": []}]
KEY_ONLY: list[dict[str, list[str]]] = [{"apiKey": []}]


def _components() -> dict[str, Any]:
    sample = {
        "type": "object",
        "required": ["ts", "metrics"],
        "properties": {
            "ts": {
                "description": "RFC 3339 text with a zone, or unix seconds. At most "
                f"{rules.MAX_FUTURE_MINUTES} minutes in the future and no older than the raw "
                f"retention ({rules.DEFAULT_RAW_RETENTION_DAYS} days by default).",
                "oneOf": [TIMESTAMP, {"type": "number"}],
            },
            "metrics": {
                "type": "object",
                "minProperties": 1,
                "maxProperties": rules.MAX_METRICS_PER_SAMPLE,
                "propertyNames": {"pattern": f"^{rules.METRIC_NAME_PATTERN}$"},
                "additionalProperties": {"type": "number"},
            },
        },
    }
    server = {
        "type": "object",
        "required": ["id", "name", "created_at", "key_hint"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "created_at": TIMESTAMP,
            "key_hint": {"type": "string"},
            "key_created_at": NULLABLE_TIMESTAMP,
            "key_last_used_at": NULLABLE_TIMESTAMP,
            "key_last_used_address": {
                "type": ["string", "null"],
                "description": "The client address of the key's last use.",
            },
            "last_seen_at": NULLABLE_TIMESTAMP,
            "paused_at": {
                **NULLABLE_TIMESTAMP,
                "description": "Set while a person has paused the server's monitoring.",
            },
            "status": {
                "type": "string",
                "enum": [s.value for s in ServerStatus],
                "description": "paused: a person paused its monitoring; "
                "initialising: never delivered metrics; online, warning, "
                "offline: by how many agent reporting intervals ago it last did "
                "(AGENT_INTERVAL_SECONDS, STATUS_WARNING_INTERVALS, STATUS_OFFLINE_INTERVALS); "
                "unknown: the last-seen facts are unavailable right now.",
            },
        },
    }
    event = {
        "type": "object",
        "required": ["id", "type", "occurred_at"],
        "properties": {
            "id": {"type": "string"},
            "type": {"type": "string"},
            "occurred_at": TIMESTAMP,
            "actor": {"type": ["string", "null"]},
            "client_address": {"type": ["string", "null"]},
            "key_hint": {"type": ["string", "null"]},
            "user_agent": {"type": ["string", "null"]},
            "details": {"type": "object"},
        },
    }
    session = {
        "type": "object",
        "required": ["id"],
        "properties": {
            "id": {"type": "string"},
            "created_at": NULLABLE_TIMESTAMP,
            "last_seen_at": NULLABLE_TIMESTAMP,
            "idle_expires_at": NULLABLE_TIMESTAMP,
            "expires_at": NULLABLE_TIMESTAMP,
            "client_address": {"type": ["string", "null"]},
            "user_agent": {"type": ["string", "null"]},
            "current": {"type": "boolean"},
        },
    }
    user = {
        "type": "object",
        "required": ["id", "account_id", "email"],
        "properties": {
            "id": {"type": "string"},
            "account_id": {"type": "string"},
            "email": {"type": "string"},
            "display_name": {"type": ["string", "null"]},
            "created_at": NULLABLE_TIMESTAMP,
        },
    }
    return {
        "securitySchemes": {
            "apiKey": {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "A server's API key (64 hexadecimal characters).",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": "__Host-scout_session",
                "description": "The session cookie set by POST /api/v1/auth/login. Unsafe "
                "methods also need the X-CSRF-Token header.",
            },
        },
        "schemas": {
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details.",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {
                        "type": "string",
                        "format": "uri-reference",
                        "description": "/problems/<name>, resolved against the request URL: "
                        "the page that explains it (or about:blank).",
                    },
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "instance": {"type": "string"},
                },
            },
            "Sample": sample,
            "Server": server,
            "ActivityEvent": event,
            "Session": session,
            "User": user,
            "CurrentSession": {
                "type": "object",
                "required": ["user", "csrf_token", "expires_at"],
                "properties": {
                    "user": _ref("User"),
                    "csrf_token": {"type": "string"},
                    "expires_at": NULLABLE_TIMESTAMP,
                    "idle_expires_at": NULLABLE_TIMESTAMP,
                    "session": _ref("Session"),
                },
            },
            "ActivityPage": {
                "type": "object",
                "required": ["events"],
                "properties": {
                    "events": {"type": "array", "items": _ref("ActivityEvent")},
                    "next_page_token": {"type": ["string", "null"]},
                },
            },
        },
    }


def _auth_paths() -> dict[str, Any]:
    return {
        "/api/v1/auth/login": {
            "post": {
                "summary": "Sign in; sets the session cookie.",
                "tags": ["auth"],
                "security": [],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["email", "password"],
                            "properties": {
                                "email": {"type": "string"},
                                "password": {"type": "string"},
                            },
                        }
                    ),
                },
                "responses": {
                    **_ok("Signed in.", _ref("CurrentSession")),
                    **_problems(400, 401, 403, 415, 422, 429),
                },
            }
        },
        "/api/v1/auth/logout": {
            "post": {
                "summary": "End this session.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "responses": {"204": {"description": "Signed out."}, **_problems(401, 403)},
            }
        },
        "/api/v1/auth/session": {
            "get": {
                "summary": "Who is signed in, and until when.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "responses": {**_ok("The session.", _ref("CurrentSession")), **_problems(401, 403)},
            }
        },
        "/api/v1/auth/sessions": {
            "get": {
                "summary": "The user's sessions.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "responses": {
                    **_ok(
                        "Sessions.",
                        {
                            "type": "object",
                            "required": ["sessions"],
                            "properties": {"sessions": {"type": "array", "items": _ref("Session")}},
                        },
                    ),
                    **_problems(401, 403),
                },
            },
            "delete": {
                "summary": "End every other session of the user.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "responses": {
                    **_ok(
                        "Sessions ended.",
                        {"type": "object", "properties": {"revoked": {"type": "integer"}}},
                    ),
                    **_problems(401, 403),
                },
            },
        },
        "/api/v1/auth/sessions/{session_id}": {
            "delete": {
                "summary": "End one session of the user.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "parameters": [_path_id("session_id", "The session's id.")],
                "responses": {"204": {"description": "Ended."}, **_problems(401, 403, 404, 422)},
            }
        },
        "/api/v1/auth/password": {
            "post": {
                "summary": "Change the password; other sessions end.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["current_password", "new_password"],
                            "properties": {
                                "current_password": {"type": "string"},
                                "new_password": {"type": "string"},
                            },
                        }
                    ),
                },
                "responses": {
                    **_ok(
                        "Changed.",
                        {"type": "object", "properties": {"sessions_ended": {"type": "integer"}}},
                    ),
                    **_problems(400, 401, 403, 415, 422, 429),
                },
            }
        },
        "/api/v1/auth/activity": {
            "get": {
                "summary": "The user's sign-in activity.",
                "tags": ["auth"],
                "security": SESSION_ONLY,
                "parameters": [*PAGING, SIGN_IN_ACTIVITY_FILTER],
                "responses": {**_ok("Events.", _ref("ActivityPage")), **_problems(401, 403, 422)},
            }
        },
    }


def _server_paths() -> dict[str, Any]:
    server_with_key = {
        "type": "object",
        "required": ["server", "api_key"],
        "properties": {"server": _ref("Server"), "api_key": {"type": "string"}},
    }
    return {
        "/api/v1/whoami": {
            "get": {
                "summary": "The authenticated caller.",
                "tags": ["identity"],
                "security": CALLER,
                "responses": {
                    **_ok(
                        "The caller.",
                        {
                            "type": "object",
                            "required": ["kind", "id"],
                            "properties": {
                                "kind": {"type": "string"},
                                "id": {"type": "string"},
                                "account_id": {"type": ["string", "null"]},
                                "auth_method": {"type": "string"},
                            },
                        },
                    ),
                    **_problems(400, 401),
                },
            }
        },
        "/api/v1/servers": {
            "get": {
                "summary": "Servers visible to the caller (a key sees its own).",
                "tags": ["servers"],
                "security": CALLER,
                "parameters": PAGING,
                "responses": {
                    **_ok(
                        "A page of servers.",
                        {
                            "type": "object",
                            "required": ["servers"],
                            "properties": {
                                "servers": {"type": "array", "items": _ref("Server")},
                                "next_page_token": {"type": ["string", "null"]},
                            },
                        },
                    ),
                    **_problems(400, 401, 403, 422),
                },
            },
            "post": {
                "summary": "Add a server; answers its API key, once.",
                "tags": ["servers"],
                "security": SESSION_ONLY,
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string"}},
                        }
                    ),
                },
                "responses": {
                    **_ok("Created.", server_with_key, "201"),
                    **_problems(400, 401, 403, 409, 413, 415, 422),
                },
            },
        },
        "/api/v1/servers/{server_id}": {
            "parameters": [SERVER_ID],
            "get": {
                "summary": "One server.",
                "tags": ["servers"],
                "security": CALLER,
                "responses": {
                    **_ok(
                        "The server.",
                        {
                            "type": "object",
                            "required": ["server"],
                            "properties": {"server": _ref("Server")},
                        },
                    ),
                    **_problems(400, 401, 403, 404, 422),
                },
            },
            "patch": {
                "summary": "Rename a server, or pause or resume its monitoring.",
                "tags": ["servers"],
                "security": SESSION_ONLY,
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "minProperties": 1,
                            "additionalProperties": False,
                            "properties": {
                                "name": {"type": "string"},
                                "paused": {"type": "boolean"},
                            },
                        }
                    ),
                },
                "responses": {
                    **_ok(
                        "The server, changed.",
                        {
                            "type": "object",
                            "required": ["server"],
                            "properties": {"server": _ref("Server")},
                        },
                    ),
                    **_problems(400, 401, 403, 404, 413, 415, 422),
                },
            },
            "delete": {
                "summary": "Delete a server; its keys stop working at once.",
                "tags": ["servers"],
                "security": SESSION_ONLY,
                "responses": {
                    "204": {"description": "Deleted."},
                    **_problems(400, 401, 403, 404, 422),
                },
            },
        },
        "/api/v1/servers/{server_id}/api-key/rotate": {
            "post": {
                "summary": "Replace the server's API key, optionally keeping the old one for "
                "a grace window.",
                "tags": ["keys"],
                "security": SESSION_ONLY,
                "parameters": [SERVER_ID],
                "requestBody": {
                    "required": False,
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "grace_seconds": {"type": "integer", "minimum": 0, "maximum": 86400}
                            },
                        }
                    ),
                },
                "responses": {
                    **_ok(
                        "Rotated.",
                        {
                            "type": "object",
                            "required": ["api_key", "server"],
                            "properties": {
                                "api_key": {"type": "string"},
                                "server": _ref("Server"),
                                "old_key_valid_until": NULLABLE_TIMESTAMP,
                            },
                        },
                    ),
                    **_problems(400, 401, 403, 404, 409, 413, 415, 422),
                },
            }
        },
        "/api/v1/servers/{server_id}/activity": {
            "get": {
                "summary": "The server's key activity.",
                "tags": ["keys"],
                "security": CALLER,
                "parameters": [SERVER_ID, *PAGING, KEY_ACTIVITY_FILTER],
                "responses": {
                    **_ok("Events.", _ref("ActivityPage")),
                    **_problems(400, 401, 403, 404, 422),
                },
            }
        },
    }


def _metric_paths() -> dict[str, Any]:
    point = {
        "type": "object",
        "required": ["ts", "avg", "min", "max", "count"],
        "properties": {
            "ts": {**TIMESTAMP, "description": "Start of the bucket (aligned to the epoch)."},
            "avg": {"type": "number"},
            "min": {"type": "number"},
            "max": {"type": "number"},
            "count": {"type": "integer", "minimum": 1},
        },
    }
    time_param = {"type": "string", "description": "RFC 3339 text or unix seconds."}
    return {
        "/api/v1/metrics": {
            "post": {
                "summary": "Post samples with the server's API key.",
                "description": "Accepted (202) only once committed. A request is stored "
                "entirely or not at all; resending stores nothing twice. Content-Encoding: "
                f"gzip is accepted; the body may be at most {rules.MAX_BODY_BYTES} bytes "
                "compressed and uncompressed.",
                "tags": ["metrics"],
                "security": KEY_ONLY,
                "parameters": [
                    {
                        "name": "Content-Encoding",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "enum": ["gzip", "identity"]},
                    }
                ],
                "requestBody": {
                    "required": True,
                    **_json(
                        {
                            "type": "object",
                            "required": ["samples"],
                            "properties": {
                                "samples": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": rules.MAX_SAMPLES,
                                    "items": _ref("Sample"),
                                }
                            },
                        }
                    ),
                },
                "responses": {
                    **_ok(
                        "Committed.",
                        {
                            "type": "object",
                            "required": ["accepted"],
                            "properties": {"accepted": {"type": "integer", "minimum": 0}},
                        },
                        "202",
                    ),
                    **_problems(400, 401, 403, 413, 415, 422, 429),
                },
            }
        },
        "/api/v1/servers/{server_id}/metrics": {
            "get": {
                "summary": "Series downsampled to a step: avg, min, max and count per bucket.",
                "description": f"At most {rules.MAX_POINTS_PER_SERIES} buckets per series, "
                f"{rules.MAX_NAMES_PER_QUERY} names and {rules.MAX_POINTS_PER_QUERY} "
                "points per query (422 beyond). Defaults: the last hour, a step giving about "
                f"{metrics.DEFAULT_POINTS} points, every metric of the server.",
                "tags": ["metrics"],
                "security": CALLER,
                "parameters": [
                    SERVER_ID,
                    _query("names", "Comma-separated metric names.", {"type": "string"}),
                    _query("from", "Start (inclusive).", time_param),
                    _query("to", "End (exclusive); default now.", time_param),
                    _query(
                        "step", "Bucket width: seconds, or 30s, 5m, 1h, 1d.", {"type": "string"}
                    ),
                ],
                "responses": {
                    **_ok(
                        "Series.",
                        {
                            "type": "object",
                            "required": ["server_id", "from", "to", "step_seconds", "series"],
                            "properties": {
                                "server_id": {"type": "string"},
                                "from": TIMESTAMP,
                                "to": TIMESTAMP,
                                "step_seconds": {"type": "integer", "minimum": 1},
                                "series": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["name", "points"],
                                        "properties": {
                                            "name": {"type": "string"},
                                            "points": {"type": "array", "items": point},
                                        },
                                    },
                                },
                            },
                        },
                    ),
                    **_problems(400, 401, 404, 422),
                },
            }
        },
        "/api/v1/servers/{server_id}/metrics/latest": {
            "get": {
                "summary": "The last value of each metric, with its time.",
                "tags": ["metrics"],
                "security": CALLER,
                "parameters": [SERVER_ID],
                "responses": {
                    **_ok(
                        "Latest values.",
                        {
                            "type": "object",
                            "required": ["server_id", "metrics"],
                            "properties": {
                                "server_id": {"type": "string"},
                                "metrics": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "required": ["name", "value", "ts"],
                                        "properties": {
                                            "name": {"type": "string"},
                                            "value": {"type": "number"},
                                            "ts": TIMESTAMP,
                                        },
                                    },
                                },
                            },
                        },
                    ),
                    **_problems(400, 401, 404),
                },
            }
        },
        "/api/v1/servers/{server_id}/metric-names": {
            "get": {
                "summary": "The names of the server's metrics.",
                "tags": ["metrics"],
                "security": CALLER,
                "parameters": [SERVER_ID],
                "responses": {
                    **_ok(
                        "Names.",
                        {
                            "type": "object",
                            "required": ["server_id", "names"],
                            "properties": {
                                "server_id": {"type": "string"},
                                "names": {"type": "array", "items": {"type": "string"}},
                            },
                        },
                    ),
                    **_problems(400, 401, 404),
                },
            }
        },
    }


def _health_paths() -> dict[str, Any]:
    status = {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string"}, "key_cache": {"type": "string"}},
    }
    return {
        "/healthz": {
            "get": {
                "summary": "Alive.",
                "tags": ["health"],
                "security": [],
                "responses": {**_ok("Alive.", status), **_problems()},
            }
        },
        "/readyz": {
            "get": {
                "summary": "Ready to serve.",
                "tags": ["health"],
                "security": [],
                "responses": {**_ok("Ready.", status), **_problems()},
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "summary": "This document.",
                "tags": ["meta"],
                "security": [],
                "responses": {**_ok("The OpenAPI document.", {"type": "object"}), **_problems()},
            }
        },
        **_problem_doc_paths(),
    }


def _problem_doc_paths() -> dict[str, Any]:
    """The pages a problem's `type` (a reference such as /problems/body-too-large) names."""
    page = {
        "description": "An HTML page.",
        "content": {"text/html": {"schema": {"type": "string"}}},
    }
    return {
        "/problems/": {
            "get": {
                "summary": "Every problem type the API answers.",
                "tags": ["meta"],
                "security": [],
                "responses": {"200": page, **_problems()},
            }
        },
        "/problems/{name}": {
            "get": {
                "summary": "What one problem type means and what to do about it.",
                "tags": ["meta"],
                "security": [],
                "parameters": [_path_id("name", "The problem type.")],
                "responses": {"200": page, **_problems(404)},
            }
        },
    }


def build_document(public_url: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Server Scout API",
            "version": "1.0.0",
            "description": "Agents post metrics with their server's API key; dashboards and "
            "tools read them with a session or a key. A key sees only its own server, a user "
            "their account's servers; anything else is 404. Errors are RFC 9457 problem+json.",
        },
        "servers": [{"url": public_url}],
        "security": CALLER,
        "paths": {**_health_paths(), **_auth_paths(), **_server_paths(), **_metric_paths()},
        "components": _components(),
    }
