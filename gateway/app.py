"""The gateway factory: the HTTPS API application and the plain-HTTP refuser."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.authn import Authenticator
from gateway.backends import Backends
from gateway.invalidation import InvalidationListener
from gateway.keycache import KeyCache
from gateway.keys import (
    AUTHENTICATOR,
    BACKENDS,
    CLOCK,
    KEY_CACHE,
    LISTENER,
    METRICS,
    SECURITY_HEADERS,
    SETTINGS,
    USAGE,
)
from gateway.limiter import UnknownKeyLimiter
from gateway.middlewares import authentication_middleware, edge_middleware, security_headers
from gateway.observability import GatewayMetrics
from gateway.problems import Problem
from gateway.routes import setup_routes
from gateway.settings import Settings
from gateway.usage import KeyUsageRecorder
from scout_kit.clock import Clock, SystemClock
from scout_kit.identity import TokenIssuer
from scout_kit.redis import Keyspace, create_redis


def create_app(settings: Settings, *, clock: Clock | None = None) -> web.Application:
    """The public HTTPS application. Nothing connects until the app starts (cleanup_ctx)."""
    app = web.Application(
        middlewares=[edge_middleware, authentication_middleware],
        client_max_size=2 * 1024 * 1024,
        # Bodies arrive as sent: handlers that take Content-Encoding (metrics) inflate with
        # their own cap on both the compressed and the inflated size.
        handler_args={"auto_decompress": False},
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[SECURITY_HEADERS] = security_headers(settings)
    app[METRICS] = GatewayMetrics()
    app.cleanup_ctx.append(_backends_ctx)
    app.cleanup_ctx.append(_redis_ctx)
    setup_routes(app)
    return app


async def _backends_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, clock = app[SETTINGS], app[CLOCK]
    issuer = TokenIssuer(settings.jwt_private_key.reveal(), clock)
    backends = Backends(
        key_service_addr=settings.key_service_addr,
        auth_service_addr=settings.auth_service_addr,
        ingest_service_addr=settings.ingest_service_addr,
        issuer=issuer,
        timeout=settings.rpc_timeout_seconds,
    )
    app[BACKENDS] = backends
    yield
    await backends.close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """Redis, the key cache with its invalidation listener, and the usage reporter."""
    settings, clock, backends = app[SETTINGS], app[CLOCK], app[BACKENDS]
    client = create_redis(settings.redis_url.reveal())
    keyspace = Keyspace(settings.redis_prefix)
    cache = KeyCache(clock, settings.key_cache_size, settings.key_cache_ttl_seconds)
    subscriber = create_redis(settings.redis_url.reveal(), reconnect=False)
    listener = InvalidationListener(subscriber, client, keyspace, cache)
    usage = KeyUsageRecorder(backends, clock, settings.key_usage_flush_seconds)
    limiter = UnknownKeyLimiter(
        client, keyspace, clock, settings.unknown_key_limit, settings.unknown_key_window_seconds
    )
    app[KEY_CACHE] = cache
    app[LISTENER] = listener
    app[USAGE] = usage
    app[AUTHENTICATOR] = Authenticator(backends, cache, limiter, usage, clock)
    metrics = app[METRICS]
    metrics.watch_keys(cache, listener)
    if settings.metrics_addr:
        metrics.serve(settings.metrics_addr)
    tasks = [
        asyncio.create_task(listener.run(), name="key-invalidation-listener"),
        asyncio.create_task(usage.run(), name="key-usage-reporter"),
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    metrics.close()
    await usage.flush()
    await subscriber.aclose()
    await client.aclose()


def create_plain_http_app(settings: Settings) -> web.Application:
    """Port 80's application: it never reads a credential. Browser page GETs are redirected to
    HTTPS; everything else, and all of /api/, is refused with a problem telling to use HTTPS."""

    async def refuse(request: web.Request) -> web.StreamResponse:
        https_url = settings.public_url + request.rel_url.path_qs
        accepts_html = "text/html" in request.headers.get("Accept", "")
        if (
            request.method in ("GET", "HEAD")
            and accepts_html
            and not request.path.startswith("/api/")
        ):
            raise web.HTTPPermanentRedirect(https_url)
        return Problem(
            403 if request.path.startswith("/api/") else 400,
            "HTTPS Required",
            f"Server Scout accepts requests only over HTTPS: use {settings.public_url}. "
            "Any credential sent over plain HTTP should be considered exposed.",
            type_="https-required",
        ).response(request.path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    return app


def create_ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context
