"""RFC 9457 problem details: every error the gateway answers has this shape."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

PROBLEM_TYPE_BASE = "https://docs.serverscout.ie/problems/"
CONTENT_TYPE = "application/problem+json"


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
        **extensions: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers or {}
        self.extensions = extensions

    def response(self, instance: str | None = None) -> web.Response:
        body: dict[str, Any] = {
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
