"""Typed application and request keys (aiohttp AppKey and RequestKey) shared by the gateway's
modules. Not API keys: those are in gateway.keycache and the key service."""

from __future__ import annotations

import redis.asyncio as aioredis
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from gateway.authn import Authenticated, Authenticator
from gateway.backends import Backends
from gateway.invalidation import InvalidationListener
from gateway.keycache import KeyCache
from gateway.lifecycle import Lifecycle
from gateway.observability import GatewayMetrics, LogBudget
from gateway.sessioncache import SessionCache
from gateway.settings import Settings
from gateway.usage import KeyUsageRecorder, SessionUseRecorder
from scout_kit.clock import Clock

SETTINGS = web.AppKey("settings", Settings)
CLOCK = web.AppKey("clock", Clock)
BACKENDS = web.AppKey("backends", Backends)
KEY_CACHE = web.AppKey("key_cache", KeyCache)
SESSION_CACHE = web.AppKey("session_cache", SessionCache)
LISTENER = web.AppKey("invalidation_listener", InvalidationListener)
USAGE = web.AppKey("key_usage", KeyUsageRecorder)
SESSION_USE = web.AppKey("session_use", SessionUseRecorder)
AUTHENTICATOR = web.AppKey("authenticator", Authenticator)
SECURITY_HEADERS = web.AppKey("security_headers", tuple[tuple[str, str], ...])
METRICS = web.AppKey("metrics", GatewayMetrics)
# The access log's budget of client-error lines (Settings.access_log_client_errors_per_second).
CLIENT_ERROR_LOG = web.AppKey("client_error_log", LogBudget)
LIFECYCLE = web.AppKey("lifecycle", Lifecycle)
TRACER_PROVIDER = web.AppKey("tracer_provider", TracerProvider)
REDIS = web.AppKey("redis", aioredis.Redis)
# The subscription's own client: it must not reconnect by itself (gateway.invalidation).
SUBSCRIBER = web.AppKey("redis_subscriber", aioredis.Redis)
# This gateway's name in the registry of gateways and on its Redis connections.
INSTANCE = web.AppKey("instance", str)

AUTH = web.RequestKey("auth", Authenticated)
CLIENT_ADDRESS = web.RequestKey("client_address", str)
