"""Every route the gateway serves (the OpenAPI document must list each of them)."""

from __future__ import annotations

from aiohttp import web

from gateway.handlers import health, metrics, servers


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_post("/api/v1/metrics", metrics.post_metrics)
    app.router.add_post("/api/v1/servers", servers.create_server)
    app.router.add_get("/api/v1/servers", servers.list_servers)
    app.router.add_get("/api/v1/servers/{server_id}", servers.get_server)
    app.router.add_delete("/api/v1/servers/{server_id}", servers.delete_server)
    app.router.add_post("/api/v1/servers/{server_id}/api-key/rotate", servers.rotate_key)
    app.router.add_get("/api/v1/servers/{server_id}/activity", servers.list_activity)
