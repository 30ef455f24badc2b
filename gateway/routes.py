"""Every route the gateway serves (the OpenAPI document must list each of them).

Each handler module registers its own routes, so resources can grow independently."""

from __future__ import annotations

from aiohttp import web

from gateway import dashboard
from gateway.handlers import auth, health, identity, metrics, openapi, servers


def setup_routes(app: web.Application) -> None:
    health.setup_routes(app)
    auth.setup_routes(app)
    identity.setup_routes(app)
    servers.setup_routes(app)
    metrics.setup_routes(app)
    openapi.setup_routes(app)
    dashboard.setup_routes(app)
