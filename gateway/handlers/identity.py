"""Who am I: the authenticated caller, as the gateway sees it (no backend call)."""

from __future__ import annotations

from aiohttp import web

from gateway.app_keys import AUTH
from gateway.rendering import json_response


async def whoami(request: web.Request) -> web.Response:
    identity = request[AUTH].identity
    return json_response(
        {
            "kind": identity.kind.value,
            "id": identity.subject,
            "account_id": identity.account_id,
            "auth_method": identity.method.value,
        }
    )


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/whoami", whoami)
