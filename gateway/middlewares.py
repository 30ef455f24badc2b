"""Cross-cutting request handling, once: request id, security headers, errors, authentication."""

from __future__ import annotations

import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable

import grpc
from aiohttp import hdrs, web
from multidict import istr

from gateway.app_keys import (
    AUTH,
    AUTHENTICATOR,
    CLIENT_ADDRESS,
    CLIENT_ERROR_LOG,
    METRICS,
    SECURITY_HEADERS,
    SETTINGS,
)
from gateway.problems import Problem
from gateway.runner import SERVER_HEADER
from gateway.settings import Settings
from scout_kit.context import (
    REQUEST_ID_HEADER,
    accept_request_id,
    client_address_var,
    request_id_var,
)
from scout_kit.text import text_fault

# Sent with the session cookie on unsafe methods: the csrf_token that login answered.
CSRF_HEADER = istr("X-CSRF-Token")
# Header names as `istr`, which multidict looks up without case-folding them on every request.
_REQUEST_ID = istr(REQUEST_ID_HEADER)
_FORWARDED_FOR = istr("X-Forwarded-For")
_FETCH_SITE = istr("Sec-Fetch-Site")
log = logging.getLogger("gateway.access")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# No page of ours uses these; clipboard-write is the dashboard's Copy buttons.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), "
    "magnetometer=(), microphone=(), midi=(), payment=(), usb=(), clipboard-write=(self)"
)
# With ACCESS_LOG=errors, requests slower than this are logged even when they succeed.
SLOW_REQUEST_SECONDS = 1.0

_GRPC_TO_HTTP: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.NOT_FOUND: (404, "Not Found"),
    grpc.StatusCode.INVALID_ARGUMENT: (422, "Unprocessable Content"),
    grpc.StatusCode.OUT_OF_RANGE: (422, "Unprocessable Content"),
    grpc.StatusCode.ALREADY_EXISTS: (409, "Conflict"),
    grpc.StatusCode.FAILED_PRECONDITION: (409, "Conflict"),
    grpc.StatusCode.PERMISSION_DENIED: (403, "Forbidden"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (503, "Service Unavailable"),
    grpc.StatusCode.UNAVAILABLE: (503, "Service Unavailable"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (503, "Service Unavailable"),
    # What a service that is shutting down answers the calls it had not finished.
    grpc.StatusCode.CANCELLED: (503, "Service Unavailable"),
}


def public(handler: Handler) -> Handler:
    """Mark a handler that needs no credentials (login, health, the API description)."""
    handler.__scout_public__ = True  # type: ignore[attr-defined]
    return handler


def client_address(request: web.Request, trusted_hops: int) -> str:
    """The peer address, or the address `trusted_hops` proxies in front of us saw."""
    if trusted_hops:
        forwarded = [p.strip() for p in request.headers.get(_FORWARDED_FOR, "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= trusted_hops:
            return forwarded[-trusted_hops][:100]
    return (request.remote or "")[:100]


def security_headers(settings: Settings) -> tuple[tuple[str, str], ...]:
    """Headers every HTTPS response carries (computed once per app; the names are `istr`)."""
    return (
        (hdrs.STRICT_TRANSPORT_SECURITY, f"max-age={settings.hsts_max_age}; includeSubDomains"),
        (hdrs.X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (hdrs.X_FRAME_OPTIONS, "DENY"),
        (istr("Referrer-Policy"), "no-referrer"),
        (istr("Permissions-Policy"), PERMISSIONS_POLICY),
        # API answers are data, never documents: nothing in them may load or be framed. The
        # dashboard's pages set their own policy (gateway.dashboard.PAGE_POLICY).
        (hdrs.CONTENT_SECURITY_POLICY, "default-src 'none'; frame-ancestors 'none'"),
        (istr("Cross-Origin-Opener-Policy"), "same-origin"),
    )


@web.middleware
async def edge_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The only middleware, in one frame because it runs on every request: request id and
    client address into the context, authentication (unless the route is public), errors into
    problem+json, security headers and the `Server` header (here rather than in an
    on_response_prepare signal, which costs a coroutine per request), access log. Every answer
    the app gives passes here, redirects included (error_response); a handler that prepared
    its own StreamResponse would bypass it."""
    app = request.app
    settings = app[SETTINGS]
    request_id = accept_request_id(request.headers.get(_REQUEST_ID))
    address = client_address(request, settings.trusted_proxy_hops)
    request[CLIENT_ADDRESS] = address
    rid_token = request_id_var.set(request_id)
    addr_token = client_address_var.set(address)
    started = time.perf_counter()
    status = 500
    try:
        try:
            check_request_text(request)
            match_info = request.match_info
            if match_info.http_exception is None and not getattr(
                match_info.handler, "__scout_public__", False
            ):
                await authenticate(request)
            response = await handler(request)
        except Exception as exc:
            response = error_response(request, exc)
        status = response.status
        headers = response.headers
        # setdefault: a handler's own value (a page's policy, a file's caching) stands.
        for name, value in app[SECURITY_HEADERS]:
            headers.setdefault(name, value)
        if request.path.startswith("/api/"):
            headers.setdefault(hdrs.CACHE_CONTROL, "no-store")
        headers[_REQUEST_ID] = request_id
        headers[hdrs.SERVER] = SERVER_HEADER
        return response
    finally:
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        app[METRICS].observe(route, request.method, status, elapsed)
        left_out = _access_log_line(app, settings.access_log, status, elapsed)
        if left_out is not None:
            fields: dict[str, object] = {
                "http_status": status,
                "duration_ms": round(elapsed * 1000, 2),
                "client_address": address,
            }
            if left_out:
                fields["client_errors_left_out"] = left_out
            log.info("%s %s %d", request.method, request.rel_url.path, status, extra=fields)
        request_id_var.reset(rid_token)
        client_address_var.reset(addr_token)


def _access_log_line(app: web.Application, mode: str, status: int, elapsed: float) -> int | None:
    """None when this answer gets no access-log line; otherwise how many client-error lines the
    budget left out before it (ACCESS_LOG_CLIENT_ERRORS_PER_SECOND)."""
    if mode == "all":
        return 0
    if mode != "errors" or (status < 400 and elapsed < SLOW_REQUEST_SECONDS):
        return None
    if status >= 500 or elapsed >= SLOW_REQUEST_SECONDS:
        return 0
    return app[CLIENT_ERROR_LOG].admit()


_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")


def check_request_text(request: web.Request) -> None:
    """Headers (cookies among them), path and query are text the API can take (scout_kit.text):
    400 naming the part, before any handler reads them."""
    headers = request.headers
    # All names and all values checked at once (one call each, on every request); only a
    # refusal walks them one by one, to name the header.
    if text_fault("".join(headers.values())) or text_fault("".join(headers), controls=True):
        for name, value in headers.items():
            fault = text_fault(value) or text_fault(name, controls=True)
            if fault is not None:
                shown = f"The {name} header" if _HEADER_NAME.fullmatch(name) else "A header"
                raise _invalid_encoding(f"{shown} holds {fault}.")
    fault = text_fault(request.path, controls=True)
    if fault is not None:
        raise _invalid_encoding(f"The path holds {fault}.")
    if not request.query_string:
        return  # most requests: no query to parse
    for key, value in request.query.items():
        fault = text_fault(key, controls=True) or text_fault(value, controls=True)
        if fault is not None:
            shown = f"The query parameter {key}" if _HEADER_NAME.fullmatch(key) else "The query"
            raise _invalid_encoding(f"{shown} holds {fault}.")


def _invalid_encoding(detail: str) -> Problem:
    return Problem(400, "Bad Request", detail, type_="invalid-encoding")


def error_response(request: web.Request, exc: Exception) -> web.Response:
    """Every error as RFC 9457 problem+json; internal detail only ever goes to the log."""
    if isinstance(exc, Problem):
        return exc.response(request.path)
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            # Redirects are answers, not errors: answered as such, with the edge's headers.
            return web.Response(
                status=exc.status, reason=exc.reason, headers=exc.headers, body=exc.body
            )
        headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return Problem(
            exc.status,
            exc.reason,
            exc.text if exc.text != f"{exc.status}: {exc.reason}" else None,
            headers=headers,
        ).response(request.path)
    if isinstance(exc, grpc.aio.AioRpcError):
        return _rpc_problem(exc).response(request.path)
    log.error("unhandled error", exc_info=exc)
    return Problem(500, "Internal Server Error", "Something went wrong on our side.").response(
        request.path
    )


def _rpc_problem(exc: grpc.aio.AioRpcError) -> Problem:
    code = exc.code()
    status, title = _GRPC_TO_HTTP.get(code, (500, "Internal Server Error"))
    if status == 503:
        log.warning("backend unavailable: %s %s", code.name, exc.details())
        return Problem(
            503,
            title,
            "A service is temporarily unavailable; retry shortly.",
            type_="service-unavailable",
            headers={"Retry-After": "1"},
        )
    if status == 500:
        log.error("backend error: %s %s", code.name, exc.details())
        return Problem(500, title, "Something went wrong on our side.")
    # For these codes the details are a domain error's public message (scout_kit.errors) or the
    # server interceptor's own fixed text: no internal detail can reach the problem.
    return Problem(status, title, exc.details() or None)


async def authenticate(request: web.Request) -> None:
    """The caller of a route that is not public, into request[AUTH] (401 or 403 otherwise);
    cookie sessions' unsafe methods checked for CSRF. Called by the edge middleware, in its
    frame, rather than as a middleware of its own (one layer less on every request)."""
    authenticated = await request.app[AUTHENTICATOR].authenticate(request, request[CLIENT_ADDRESS])
    if authenticated.csrf_token is not None and request.method in UNSAFE_METHODS:
        check_csrf(request, authenticated.csrf_token)
    request[AUTH] = authenticated


def check_origin(request: web.Request) -> None:
    """Refuse a request a browser says comes from another site: an `Origin` other than ours
    (including `null`), or `Sec-Fetch-Site: cross-site`. Clients that send neither pass."""
    settings = request.app[SETTINGS]
    origin = request.headers.get(hdrs.ORIGIN)
    cross_site = request.headers.get(_FETCH_SITE, "").lower() == "cross-site"
    if cross_site or (origin is not None and origin.rstrip("/") != settings.public_url):
        raise Problem(403, "Forbidden", "Cross-origin request refused.", type_="csrf")


def check_csrf(request: web.Request, expected: str) -> None:
    """Cookie-authenticated unsafe requests must echo the session's CSRF token, and come from
    our own origin when the browser says where they come from."""
    check_origin(request)
    supplied = request.headers.get(CSRF_HEADER, "")
    if not supplied or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Problem(403, "Forbidden", "Missing or wrong X-CSRF-Token header.", type_="csrf")
