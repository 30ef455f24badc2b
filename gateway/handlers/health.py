"""Liveness and readiness of a gateway replica."""

from __future__ import annotations

from aiohttp import web

from gateway.app_keys import KEY_CACHE, LIFECYCLE
from gateway.middlewares import public
from gateway.rendering import json_response


@public
async def healthz(request: web.Request) -> web.Response:
    """Alive: the event loop answers."""
    return json_response({"status": "ok"})


@public
async def readyz(request: web.Request) -> web.Response:
    """Ready to serve, until the replica is told to stop (503 while it drains). An untrusted key
    cache is not a failure (every key is then checked with the key service), so it is reported,
    not failed on."""
    cache = request.app[KEY_CACHE]
    key_cache = "trusted" if cache.trusted else "bypassed"
    if request.app[LIFECYCLE].draining:
        return json_response({"status": "draining", "key_cache": key_cache}, status=503)
    return json_response({"status": "ok", "key_cache": key_cache})


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
