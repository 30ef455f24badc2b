"""RFC 9457 problem details: every error the gateway answers has this shape."""

from __future__ import annotations

import json
from dataclasses import dataclass

from aiohttp import web

# Problem `type` URIs are relative references (RFC 9457 section 3.1.1): resolved against the
# request's URL they name the page this gateway serves for the type (handlers.problem_docs).
PROBLEM_TYPE_BASE = "/problems/"
CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True)
class ProblemType:
    status: int
    title: str
    meaning: str
    remedy: str


# Every problem type the API answers, and what its documentation page says; the pages in
# gateway/problem_docs/ are generated from this (scripts/gen_problem_docs.py, checked by a test).
PROBLEM_TYPES: dict[str, ProblemType] = {
    "unauthenticated": ProblemType(
        401, "Authentication required",
        "The request carried neither an X-API-Key header nor a session cookie.",
        "Send the server's API key in X-API-Key, or sign in (POST /api/v1/auth/login) and send "
        "the session cookie.",
    ),
    "malformed-api-key": ProblemType(
        401, "Malformed API key",
        "X-API-Key must be exactly 64 hexadecimal characters; nothing was looked up.",
        "Copy the whole key (as shown once when it was created or rotated) into the header.",
    ),
    "unknown-api-key": ProblemType(
        401, "Unknown API key",
        "No server has this key. Repeated unknown keys from one address are throttled.",
        "Check SCOUTAPIKEY in the agent's env file; create a server or rotate its key to get one.",
    ),
    "api-key-rotated": ProblemType(
        401, "API key replaced",
        "The server's key was regenerated and this one no longer works (or its grace window "
        "ended).",
        "Put the new key in SCOUTAPIKEY in the agent's env file (`scoutctl key rotate SERVER "
        "--update-env FILE` does it); the agent uses it from its next send, without a restart.",
    ),
    "api-key-revoked": ProblemType(
        401, "API key revoked",
        "The key was revoked, for example because its server was deleted.",
        "Add the server again to get a new key, or remove the agent.",
    ),
    "session-invalid": ProblemType(
        401, "Session not valid",
        "The session cookie is unknown, expired (idle or absolute limit) or was ended.",
        "Sign in again.",
    ),
    "invalid-credentials": ProblemType(
        401, "Wrong email or password",
        "Unknown email and wrong password get this same answer.",
        "Check both; after repeated failures the answer becomes too-many-login-attempts.",
    ),
    "ambiguous-credentials": ProblemType(
        400, "Two credentials on one request",
        "The request carried both an X-API-Key header and a session cookie; guessing which one "
        "was meant could silently change who acts.",
        "Send only one of them.",
    ),
    "malformed-request": ProblemType(
        400, "Malformed HTTP request",
        "The HTTP parser refused the request before it reached the API: a bad request line, a "
        "header holding bytes a header may not hold, or a request line or header over the size "
        "limit. Nothing of the request is echoed or logged.",
        "Send a well-formed HTTP/1.1 request with headers of reasonable size.",
    ),
    "invalid-encoding": ProblemType(
        400, "Request text is not valid UTF-8",
        "A header, cookie, query parameter or path segment holds bytes that are not valid UTF-8 "
        "text, or a control character; the detail names which.",
        "Send text as UTF-8 (percent-encoded in URLs).",
    ),
    "too-many-unknown-keys": ProblemType(
        429, "Too many unknown API keys",
        "This client address sent more unknown keys than UNKNOWN_KEY_LIMIT within the window.",
        "Wait for the Retry-After seconds, and fix the key that is being sent.",
    ),
    "too-many-login-attempts": ProblemType(
        429, "Too many failed sign-ins",
        "Failed sign-ins for this account, address or both passed their limit.",
        "Wait for the Retry-After seconds; waiting always ends it.",
    ),
    "session-required": ProblemType(
        403, "A signed-in user is required",
        "This operation (creating, deleting, rotating, account settings) is not open to API keys.",
        "Sign in and send the session cookie and X-CSRF-Token.",
    ),
    "api-key-required": ProblemType(
        403, "An API key is required",
        "Posting metrics is done by a server's agent with its API key, not by a signed-in user.",
        "Send the server's key in X-API-Key.",
    ),
    "user-disabled": ProblemType(
        403, "User disabled",
        "An operator disabled this user (scout-admin disable-user).",
        "Ask your operator to enable it again.",
    ),
    "wrong-current-password": ProblemType(
        403, "Current password is wrong",
        "Changing the password needs the current one.",
        "Send the current password as it is now.",
    ),
    "csrf": ProblemType(
        403, "Cross-site request refused",
        "A cookie-authenticated POST, PUT, PATCH or DELETE lacked the session's X-CSRF-Token, or "
        "the browser said it came from another site.",
        "Send X-CSRF-Token with the csrf_token the login answered, from the same origin.",
    ),
    "https-required": ProblemType(
        403, "HTTPS required",
        "Server Scout accepts requests only over HTTPS; this one came over plain HTTP (403 for "
        "the API, 400 for anything else that is not a browser page).",
        "Use the https:// URL. Treat any credential sent over plain HTTP as exposed.",
    ),
    "invalid-json": ProblemType(
        400, "Body is not a JSON object",
        "The body could not be parsed as JSON, or is not an object.",
        "Send a JSON object with Content-Type: application/json.",
    ),
    "invalid-gzip": ProblemType(
        400, "Body is not valid gzip",
        "Content-Encoding said gzip but the body could not be inflated.",
        "Compress the whole body with gzip, or drop the Content-Encoding header.",
    ),
    "body-too-large": ProblemType(
        413, "Body too large",
        "The body, as sent or once inflated, is over the endpoint's limit (1 MiB for metrics).",
        "Send fewer samples per request.",
    ),
    "unsupported-media-type": ProblemType(
        415, "Unsupported media type",
        "The endpoint takes application/json only.",
        "Send Content-Type: application/json.",
    ),
    "unsupported-content-encoding": ProblemType(
        415, "Unsupported content encoding",
        "Only POST /api/v1/metrics takes a Content-Encoding (gzip); other endpoints take none.",
        "Send the body uncompressed, or gzip to the metrics endpoint.",
    ),
    "invalid-field": ProblemType(
        422, "Invalid field",
        "A field of the body is missing, of the wrong type or outside its limits; the detail "
        "names it.",
        "Correct the field as the detail says.",
    ),
    "weak-password": ProblemType(
        422, "Password too weak",
        "The new password is too short, too common or too close to the email.",
        "Choose a longer, less common password.",
    ),
    "invalid-parameter": ProblemType(
        422, "Invalid query parameter",
        "A query parameter (such as limit) is outside its range.",
        "Correct the parameter as the detail says.",
    ),
    "invalid-metrics": ProblemType(
        422, "Invalid metric samples",
        "A sample breaks a limit: too many samples or metrics, a bad name, a value that is not "
        "a finite number, or a time too far ahead or older than the late-sample window. Nothing "
        "of the request was stored; `pointer` names the place.",
        "Fix the samples as the detail says and send them again.",
    ),
    "invalid-query": ProblemType(
        422, "Metric query too large or malformed",
        "The query asks for too many points, names or series, or a parameter is malformed; "
        "`parameter` names it.",
        "Narrow the time range, raise the step or ask for fewer names.",
    ),
    "ingest-busy": ProblemType(
        503, "Storage is busy",
        "Too many samples are waiting to be committed; nothing of this request was stored.",
        "Retry after the Retry-After seconds (the agent does, from its spool).",
    ),
    "service-unavailable": ProblemType(
        503, "Service temporarily unavailable",
        "A service or a dependency (PostgreSQL, Redis) behind the gateway is unavailable; the "
        "request failed closed and changed nothing it could not finish.",
        "Retry after the Retry-After seconds.",
    ),
}  # fmt: skip


class Problem(Exception):
    """Raised anywhere in a request; the error middleware renders it."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type_: str | None = None,
        headers: dict[str, str] | None = None,
        **extensions: object,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions

    def response(self, instance: str | None = None) -> web.Response:
        body: dict[str, object] = {
            "type": PROBLEM_TYPE_BASE + self.type if self.type else "about:blank",
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if instance:
            body["instance"] = instance
        body.update(self.extensions)
        return web.Response(
            status=self.status,
            body=json.dumps(body).encode(),
            content_type=CONTENT_TYPE,
            headers=self.headers,
        )


def unauthorized(detail: str, type_: str = "unauthenticated") -> Problem:
    return Problem(
        401,
        "Unauthorized",
        detail,
        type_=type_,
        headers={"WWW-Authenticate": 'APIKey header="X-API-Key", Cookie'},
    )
