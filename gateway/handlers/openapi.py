"""GET /api/v1/openapi.json: the API description (public), rendered once per app."""

from __future__ import annotations

import json

from aiohttp import web

from gateway.app_keys import SETTINGS
from gateway.middlewares import public
from gateway.openapi import build_document

DOCUMENT = web.AppKey("openapi_document", bytes)


@public
async def openapi_document(request: web.Request) -> web.Response:
    return web.Response(body=request.app[DOCUMENT], content_type="application/json")


def setup_routes(app: web.Application) -> None:
    app[DOCUMENT] = json.dumps(build_document(app[SETTINGS].public_url)).encode()
    app.router.add_get("/api/v1/openapi.json", openapi_document)
