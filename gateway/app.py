"""The gateway factory: the HTTPS API application and the plain-HTTP refuser."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator

from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from gateway.app_keys import (
    AUTHENTICATOR,
    BACKENDS,
    CLIENT_ERROR_LOG,
    CLOCK,
    INSTANCE,
    KEY_CACHE,
    LIFECYCLE,
    LISTENER,
    METRICS,
    REDIS,
    SECURITY_HEADERS,
    SESSION_CACHE,
    SESSION_USE,
    SETTINGS,
    SUBSCRIBER,
    TRACER_PROVIDER,
    USAGE,
)
from gateway.authn import Authenticator
from gateway.backends import Backends
from gateway.ingest_batcher import batcher_context
from gateway.invalidation import InvalidationListener, gateway_instance
from gateway.keycache import KeyCache
from gateway.lease import Lease
from gateway.lifecycle import Lifecycle
from gateway.limiter import UnknownKeyLimiter
from gateway.middlewares import edge_middleware, security_headers
from gateway.observability import GatewayMetrics, LogBudget
from gateway.problems import Problem
from gateway.routes import setup_routes
from gateway.runner import install_server_header
from gateway.sessioncache import SessionCache
from gateway.settings import Settings
from gateway.usage import KeyUsageRecorder, SessionUseRecorder
from scout_kit.clock import Clock, SystemClock
from scout_kit.identity import TokenIssuer
from scout_kit.invalidation import held_lease_seconds
from scout_kit.metrics import DependencyProbe
from scout_kit.redis import Keyspace, create_redis
from scout_kit.tasks import cancel_and_wait
from scout_kit.tracing import aiohttp_middleware, client_interceptors, otlp_tracer_provider

log = logging.getLogger(__name__)


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> web.Application:
    """The public HTTPS application. Nothing connects until the app starts (cleanup_ctx).

    Tracing uses `tracer_provider`, else the one settings.tracing configures; when tracing is
    off no tracing middleware or interceptor is installed at all."""
    provider = tracer_provider or otlp_tracer_provider(settings.tracing)
    tracing = [aiohttp_middleware(provider)] if provider else []
    app = web.Application(
        # Tracing outermost: the edge's access log and error answers happen inside the span.
        middlewares=[*tracing, edge_middleware],
        client_max_size=2 * 1024 * 1024,
        # Bodies arrive as sent: handlers that take Content-Encoding (metrics) inflate with
        # their own cap on both the compressed and the inflated size.
        handler_args={"auto_decompress": False},
    )
    app[SETTINGS] = settings
    app[CLOCK] = clock or SystemClock()
    app[SECURITY_HEADERS] = security_headers(settings)
    app[METRICS] = GatewayMetrics(app[CLOCK])
    app[CLIENT_ERROR_LOG] = LogBudget(app[CLOCK], settings.access_log_client_errors_per_second)
    app[LIFECYCLE] = Lifecycle()
    if provider is not None:
        app[TRACER_PROVIDER] = provider
        if tracer_provider is None:  # ours to shut down
            app.cleanup_ctx.append(_tracing_ctx)
    _add_caches(app)
    # One context per resource; they start in this order and stop in the reverse one.
    app.cleanup_ctx.extend(
        [
            _metrics_endpoint_ctx,
            _backends_ctx,
            _redis_ctx,
            _invalidation_ctx,
            _usage_ctx,
            _authentication_ctx,
            batcher_context,
        ]
    )
    setup_routes(app)
    return app


def _add_caches(app: web.Application) -> None:
    """The key and session caches, under one lease (gateway.lease): memory only, nothing to
    open or close."""
    settings, clock, metrics = app[SETTINGS], app[CLOCK], app[METRICS]
    # CACHE_LEASE_SECONDS bounds the wait for a silent gateway; the lease held is that much
    # shorter (clock-rate and delivery margins).
    lease = Lease(clock, held_lease_seconds(settings.caches.lease_seconds))
    app[KEY_CACHE] = KeyCache(
        clock,
        settings.caches.key_size,
        settings.caches.key_ttl_seconds,
        lease,
        stats=metrics.key_cache,
    )
    app[SESSION_CACHE] = SessionCache(
        clock,
        settings.caches.session_size,
        settings.caches.session_ttl_seconds,
        lease,
        stats=metrics.session_cache,
    )


async def _tracing_ctx(app: web.Application) -> AsyncIterator[None]:
    """Export the last spans on the way out."""
    yield
    await asyncio.to_thread(app[TRACER_PROVIDER].shutdown)


async def _metrics_endpoint_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, metrics = app[SETTINGS], app[METRICS]
    if settings.metrics_addr:
        metrics.endpoint.serve(settings.metrics_addr)
    yield
    metrics.endpoint.close()


async def _backends_ctx(app: web.Application) -> AsyncIterator[None]:
    settings, clock = app[SETTINGS], app[CLOCK]
    issuer = TokenIssuer(settings.jwt_private_key.reveal(), clock)
    backends = Backends(
        key_service_addr=settings.key_service_addr,
        auth_service_addr=settings.auth_service_addr,
        ingest_service_addr=settings.ingest_service_addr,
        issuer=issuer,
        timeout=settings.rpc_timeout_seconds,
        tls=settings.internal_tls,
        interceptors=client_interceptors(app.get(TRACER_PROVIDER)),
    )
    app[BACKENDS] = backends
    watcher = asyncio.create_task(
        backends.watch_certificates(settings.internal_tls_reload_seconds),
        name="internal-tls-watcher",
    )
    yield
    await cancel_and_wait(watcher)
    await backends.close()


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis clients: one for commands, one for the invalidation subscription (which must
    not reconnect by itself), and the probe of Redis's latency. Closed after everything that
    uses them."""
    settings = app[SETTINGS]
    app[REDIS] = create_redis(settings.redis)
    app[INSTANCE] = gateway_instance()
    app[SUBSCRIBER] = create_redis(settings.redis, reconnect=False, name=app[INSTANCE])
    probe = DependencyProbe("redis", app[REDIS].ping, app[METRICS].registry)
    probing = asyncio.create_task(probe.run(), name="redis-probe")
    yield
    # Whatever anything ended with, both clients are closed before the loop is: a connection
    # left open is collected after the loop closed ("StreamWriter.__del__: loop is closed").
    try:
        probe.stop()
        await probing
    finally:
        await app[SUBSCRIBER].aclose()
        await app[REDIS].aclose()


async def _invalidation_ctx(app: web.Application) -> AsyncIterator[None]:
    """The subscription that keeps the key and session caches honest, and their lease."""
    settings, clock, metrics = app[SETTINGS], app[CLOCK], app[METRICS]
    listener = InvalidationListener(
        app[INSTANCE],
        app[SUBSCRIBER],
        app[REDIS],
        Keyspace(settings.redis_prefix),
        app[KEY_CACHE],
        app[SESSION_CACHE],
        clock,
        on_applied=metrics.invalidation_applied,
    )
    app[LISTENER] = listener
    metrics.watch_keys(app[KEY_CACHE], listener)
    metrics.watch_sessions(app[SESSION_CACHE])
    running = asyncio.create_task(listener.run(), name="invalidation-listener")
    yield
    await cancel_and_wait(running)  # logs it if it had failed
    await listener.deregister()


async def _usage_ctx(app: web.Application) -> AsyncIterator[None]:
    """The reporters of key and session use, flushed on the way out."""
    settings, clock, backends = app[SETTINGS], app[CLOCK], app[BACKENDS]
    app[USAGE] = KeyUsageRecorder(backends, clock, settings.key_usage_flush_seconds)
    app[SESSION_USE] = SessionUseRecorder(backends, clock, settings.key_usage_flush_seconds)
    reporters = [
        asyncio.create_task(app[USAGE].run(), name="key-usage-reporter"),
        asyncio.create_task(app[SESSION_USE].run(), name="session-use-reporter"),
    ]
    yield
    await cancel_and_wait(*reporters)
    await app[USAGE].flush()
    await app[SESSION_USE].flush()


async def _authentication_ctx(app: web.Application) -> AsyncIterator[None]:
    """The authenticator every request goes through, with its unknown-key limiter."""
    settings, clock = app[SETTINGS], app[CLOCK]
    limiter = UnknownKeyLimiter(
        app[REDIS],
        Keyspace(settings.redis_prefix),
        clock,
        settings.unknown_key_limit,
        settings.unknown_key_window_seconds,
    )
    app[AUTHENTICATOR] = Authenticator(
        app[BACKENDS],
        app[KEY_CACHE],
        app[SESSION_CACHE],
        limiter,
        app[USAGE],
        app[SESSION_USE],
        clock,
    )
    yield
    await limiter.close()


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
    install_server_header(app)
    return app


def create_ssl_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context
