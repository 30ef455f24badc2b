"""The dashboard: static files (gateway/static/) served at `/`, a client of the public API only.

At start every file is read once, given a content-hashed name and compressed (brotli and gzip).
A file's name carries the hash of its content *after* its references to other files were
rewritten to their hashed names, so changing a module changes the name of every module that
imports it, up to the page: each `/assets/` URL is immutable and cached for a year, while the
page itself (the same HTML shell for every screen; the modules route in the browser) is
`no-store`. References are the ES module specifiers `./x.js` / `../x.js` in JavaScript and
`/assets/...` paths in HTML, CSS and the web-app manifest.

Pages carry a strict Content-Security-Policy: only this origin's files, no inline script or
style, no framing, no `<base>`, forms post only here.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import mimetypes
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import brotli
from aiohttp import web

from gateway.middlewares import public
from scout_agent.archive import build_archive

STATIC_DIR = Path(__file__).parent / "static"
ASSET_PREFIX = "/assets/"
# The agent as one file, for the install command the dashboard shows next to a new key.
AGENT_DOWNLOAD = "/downloads/scout-agent.pyz"
SHELL = "index.html"
# The screens of the dashboard; each answers the shell and the browser picks the view.
PAGE_ROUTES = (
    "/",
    "/sign-in",
    "/servers",
    "/servers/{server_id}",
    "/servers/{server_id}/activity",
    "/servers/{server_id}/settings",
    "/activity",
    "/account",
)
PAGE_ROUTE_PREFIX = "dashboard:"

PAGE_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "font-src 'self'",
        "connect-src 'self'",
        "manifest-src 'self'",
        "worker-src 'none'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": PAGE_POLICY,
    "Cache-Control": "no-store",
}
IMMUTABLE = "public, max-age=31536000, immutable"
COMPRESSIBLE = frozenset({".js", ".css", ".html", ".svg", ".json", ".webmanifest", ".txt"})
TEXT = COMPRESSIBLE
HASH_LENGTH = 12
BROTLI_QUALITY = 9

_JS_IMPORT = re.compile(r"""((?:\bfrom|\bimport)\s*\(?\s*)(["'])(\.{1,2}/[^"']+)\2""")
_ASSET_PATH = re.compile(r"/assets/([A-Za-z0-9_./-]+\.[A-Za-z0-9]+)")
_SOURCE_MAP = re.compile(r"\n?//# sourceMappingURL=\S+\s*$")


@dataclass(frozen=True)
class Asset:
    """One file as served: its bytes, their precompressed forms and its validator."""

    content_type: str
    body: bytes
    etag: str
    encoded: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def of(cls, name: str, body: bytes) -> Asset:
        suffix = PurePosixPath(name).suffix
        content_type = {
            ".js": "text/javascript",
            ".webmanifest": "application/manifest+json",
        }.get(suffix) or (mimetypes.guess_type(name)[0] or "application/octet-stream")
        encoded: dict[str, bytes] = {}
        if suffix in COMPRESSIBLE:
            encoded = {
                # Quality 9: within 10 % of the smallest, at a tenth of the start-up time.
                "br": brotli.compress(body, quality=BROTLI_QUALITY),
                "gzip": gzip.compress(body, compresslevel=9, mtime=0),
            }
        digest = hashlib.sha256(body).hexdigest()[:HASH_LENGTH]
        return cls(content_type, body, f'"{digest}"', encoded)


def hashed_name(name: str, body: bytes) -> str:
    path = PurePosixPath(name)
    digest = hashlib.sha256(body).hexdigest()[:HASH_LENGTH]
    return str(path.with_name(f"{path.stem}.{digest}{path.suffix}"))


class AssetGraphError(ValueError):
    """A reference names a file that does not exist, or files reference each other in a loop."""


class _Hasher:
    """Names every file by the hash of its rewritten content, leaves first."""

    def __init__(self, sources: dict[str, bytes]) -> None:
        self._sources = sources
        self.names: dict[str, str] = {}
        self.bodies: dict[str, bytes] = {}
        self._visiting: set[str] = set()

    def resolve(self, name: str) -> str:
        if name in self.names:
            return self.names[name]
        if name in self._visiting:
            raise AssetGraphError(f"static files import each other in a loop through {name}")
        if name not in self._sources:
            raise AssetGraphError(f"a static file refers to {name}, which does not exist")
        self._visiting.add(name)
        body = self._rewrite(name, self._sources[name])
        self._visiting.discard(name)
        self.bodies[name] = body
        self.names[name] = name if name == SHELL else hashed_name(name, body)
        return self.names[name]

    def _rewrite(self, name: str, body: bytes) -> bytes:
        suffix = PurePosixPath(name).suffix
        if suffix not in TEXT:
            return body
        text = body.decode("utf-8")
        if suffix == ".js":
            text = _SOURCE_MAP.sub("", _JS_IMPORT.sub(lambda m: self._module(name, m), text))
        else:
            text = _ASSET_PATH.sub(lambda m: ASSET_PREFIX + self.resolve(m.group(1)), text)
        return text.encode("utf-8")

    def _module(self, importer: str, match: re.Match[str]) -> str:
        specifier = match.group(3)
        target = _normalise(PurePosixPath(importer).parent / specifier)
        hashed = PurePosixPath(self.resolve(target)).name
        rewritten = str(PurePosixPath(specifier).with_name(hashed))
        if not rewritten.startswith("."):
            rewritten = "./" + rewritten
        return f"{match.group(1)}{match.group(2)}{rewritten}{match.group(2)}"


def _normalise(path: PurePosixPath) -> str:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                raise AssetGraphError(f"{path} points outside the static folder")
            parts.pop()
        elif part != ".":
            parts.append(part)
    return "/".join(parts)


@dataclass(frozen=True)
class Dashboard:
    """The shell page and every asset under its hashed name."""

    shell: Asset
    assets: dict[str, Asset]
    agent: Asset
    # Unhashed name -> hashed name (what the shell and the modules were rewritten to).
    names: dict[str, str]

    @classmethod
    @functools.cache
    def load(cls, root: Path = STATIC_DIR) -> Dashboard:
        """Read, name and compress every file once per process (every gateway app built in it
        serves the same files)."""
        sources = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(".")
        }
        hasher = _Hasher(sources)
        for name in sources:
            hasher.resolve(name)
        assets = {
            hasher.names[name]: Asset.of(name, body)
            for name, body in hasher.bodies.items()
            if name != SHELL
        }
        shell = Asset.of(SHELL, hasher.bodies[SHELL])
        agent = Asset.of("scout-agent.pyz", build_archive())
        return cls(shell, assets, agent, dict(hasher.names))

    def url(self, name: str) -> str:
        return ASSET_PREFIX + self.names[name]


def preferred_encoding(accept_encoding: str, available: Iterable[str]) -> str | None:
    """br, then gzip, when the client accepts it (q > 0); None for the identity."""
    accepted: dict[str, float] = {}
    for item in accept_encoding.split(","):
        token, _, params = item.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                quality = 0.0
        accepted[token.strip().lower()] = quality
    for encoding in ("br", "gzip"):
        if encoding in available and accepted.get(encoding, accepted.get("*", 0.0)) > 0:
            return encoding
    return None


def _respond(
    request: web.Request, asset: Asset, status: int, headers: dict[str, str]
) -> web.Response:
    encoding = preferred_encoding(request.headers.get("Accept-Encoding", ""), asset.encoded)
    body = asset.encoded[encoding] if encoding else asset.body
    response = web.Response(status=status, body=body, headers=headers)
    response.content_type = asset.content_type
    if asset.content_type.startswith("text/") or asset.content_type.endswith("json"):
        response.charset = "utf-8"
    if asset.encoded:
        response.headers["Vary"] = "Accept-Encoding"
    if encoding:
        response.headers["Content-Encoding"] = encoding
    return response


DASHBOARD = web.AppKey("dashboard", Dashboard)


@public
async def page(request: web.Request) -> web.Response:
    """The shell of every screen: the browser router decides what to show, and asks the API
    (which answers 401 when the session has ended) for everything it shows."""
    return _respond(request, request.app[DASHBOARD].shell, 200, dict(PAGE_HEADERS))


@public
async def asset(request: web.Request) -> web.StreamResponse:
    found = request.app[DASHBOARD].assets.get(request.match_info["name"])
    if found is None:
        raise web.HTTPNotFound(text="No such file: dashboard files are named by their content.")
    headers = {
        "Cache-Control": IMMUTABLE,
        "ETag": found.etag,
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    return _respond(request, found, 200, headers)


@public
async def agent_archive(request: web.Request) -> web.Response:
    """The agent archive of this gateway's version (not content-named: revalidated by ETag)."""
    found = request.app[DASHBOARD].agent
    headers = {
        "Cache-Control": "no-cache",
        "ETag": found.etag,
        "Content-Disposition": 'attachment; filename="scout-agent.pyz"',
    }
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    response = web.Response(status=200, body=found.body, headers=headers)
    response.content_type = "application/zip"
    return response


def setup_routes(app: web.Application, dashboard: Dashboard | None = None) -> None:
    app[DASHBOARD] = dashboard or Dashboard.load()
    for index, path in enumerate(PAGE_ROUTES):
        app.router.add_get(path, page, name=f"{PAGE_ROUTE_PREFIX}page_{index}")
    app.router.add_get(ASSET_PREFIX + "{name:.+}", asset, name=f"{PAGE_ROUTE_PREFIX}assets")
    app.router.add_get(AGENT_DOWNLOAD, agent_archive, name=f"{PAGE_ROUTE_PREFIX}agent")
