"""The documentation of every problem type, at the URI its `type` names: /problems/<type>.

Static pages shipped in gateway/problem_docs/ (generated from gateway.problems.PROBLEM_TYPES),
read once when the routes are set up and served without credentials. Kept apart from any other
static files the gateway serves."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from gateway.middlewares import public
from gateway.problems import PROBLEM_TYPE_BASE

PAGES = web.AppKey("problem_pages", dict[str, tuple[bytes, str]])
# Nothing on these pages runs or loads from elsewhere.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; base-uri 'none'",
    "Cache-Control": "public, max-age=3600",
}
_CONTENT_TYPES = {".html": "text/html", ".css": "text/css"}


def load_pages() -> dict[str, tuple[bytes, str]]:
    """Path segment -> (body, content type): "" is the index, a type's name its page."""
    pages = {}
    for entry in resources.files("gateway").joinpath("problem_docs").iterdir():
        name = entry.name
        suffix = name[name.rfind(".") :]
        if suffix not in _CONTENT_TYPES:
            continue
        key = "" if name == "index.html" else name.removesuffix(".html")
        pages[key] = (entry.read_bytes(), _CONTENT_TYPES[suffix])
    return pages


@public
async def problem_page(request: web.Request) -> web.Response:
    found = request.app[PAGES].get(request.match_info.get("name", ""))
    if found is None:
        raise web.HTTPNotFound(text="No such problem type.")
    body, content_type = found
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=_HEADERS)


def setup_routes(app: web.Application) -> None:
    app[PAGES] = load_pages()
    app.router.add_get(PROBLEM_TYPE_BASE, problem_page)
    app.router.add_get(PROBLEM_TYPE_BASE + "{name}", problem_page)
