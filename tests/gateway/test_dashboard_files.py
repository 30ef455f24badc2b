"""How the gateway serves the dashboard: the shell page with its security headers, content-named
assets cached for a year and served compressed, the agent archive; and the vendored libraries
match their manifest."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import ClientSession

from gateway.dashboard import (
    AGENT_DOWNLOAD,
    PAGE_ROUTES,
    AssetGraphError,
    Dashboard,
    preferred_encoding,
)
from scout_agent.archive import build_archive
from tests.stack import Environment, client_session, running_stack

PAGES = [p.replace("{server_id}", "3f0c8c2e-4c4e-4d0e-9c43-2d9f3b1c7a10") for p in PAGE_ROUTES]
ROOT = Path(__file__).resolve().parents[2]
ASSET = re.compile(r'(?:src|href)="(/assets/[^"]+)"')


@pytest.fixture
async def gateway(env: Environment) -> AsyncIterator[tuple[str, ClientSession]]:
    async with running_stack(env) as stack, client_session(env, auto_decompress=False) as http:
        yield stack.gateway.url, http


async def test_every_page_is_the_shell_with_a_strict_policy(
    gateway: tuple[str, ClientSession],
) -> None:
    url, http = gateway
    for path in PAGES:
        async with http.get(url + path, headers={"Accept-Encoding": "identity"}) as response:
            assert response.status == 200, path
            assert response.content_type == "text/html"
            headers = response.headers
            policy = dict(
                part.strip().split(" ", 1) for part in headers["Content-Security-Policy"].split(";")
            )
            assert policy["default-src"] == "'self'"
            assert policy["script-src"] == "'self'" and policy["style-src"] == "'self'"
            assert policy["frame-ancestors"] == "'none'" and policy["base-uri"] == "'none'"
            assert policy["form-action"] == "'self'" and policy["object-src"] == "'none'"
            assert "unsafe" not in headers["Content-Security-Policy"]
            assert headers["Cache-Control"] == "no-store"
            assert headers["X-Content-Type-Options"] == "nosniff"
            assert headers["Referrer-Policy"] == "no-referrer"
            assert "camera=()" in headers["Permissions-Policy"]
            assert headers["Strict-Transport-Security"].startswith("max-age=")
            body = await response.text()
    assert "<script>" not in body and "style=" not in body and "<style" not in body
    assert len(ASSET.findall(body)) >= 4


async def test_assets_are_content_named_immutable_and_compressed(
    gateway: tuple[str, ClientSession],
) -> None:
    url, http = gateway
    async with http.get(url + "/servers", headers={"Accept-Encoding": "identity"}) as response:
        shell = await response.text()
    for path in ASSET.findall(shell):
        assert re.search(r"\.[0-9a-f]{12}\.[a-z]+$", path), path
        async with http.get(url + path, headers={"Accept-Encoding": "gzip, br"}) as response:
            assert response.status == 200, path
            assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert response.headers["Content-Encoding"] == "br"
            assert response.headers["Vary"] == "Accept-Encoding"
            etag = response.headers["ETag"]
        async with http.get(url + path, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["Content-Encoding"] == "gzip"
        async with http.get(url + path, headers={"Accept-Encoding": "identity"}) as response:
            assert "Content-Encoding" not in response.headers
        async with http.get(url + path, headers={"If-None-Match": etag}) as response:
            assert response.status == 304
    async with http.get(url + "/assets/js/app.js") as response:
        assert response.status == 404
        assert response.content_type == "application/problem+json"


async def test_api_answers_may_never_be_rendered_as_documents(
    gateway: tuple[str, ClientSession],
) -> None:
    url, http = gateway
    async with http.get(url + "/api/v1/servers") as response:
        assert response.status == 401
        assert response.headers["Content-Security-Policy"] == (
            "default-src 'none'; frame-ancestors 'none'"
        )


async def test_the_agent_archive_is_downloadable_and_runs(
    gateway: tuple[str, ClientSession],
) -> None:
    url, http = gateway
    async with http.get(url + AGENT_DOWNLOAD) as response:
        assert response.status == 200
        assert response.content_type == "application/zip"
        assert "scout-agent.pyz" in response.headers["Content-Disposition"]
        body = await response.read()
    assert body == build_archive()  # the same bytes as scripts/build_agent.py writes
    assert body.startswith(b"#!/usr/bin/env python3\n")
    names = zipfile.ZipFile(io.BytesIO(body)).namelist()
    assert "__main__.py" in names and "scout_agent/agent.py" in names


def test_references_are_rewritten_to_content_names(tmp_path: Path) -> None:
    (tmp_path / "js").mkdir()
    (tmp_path / "index.html").write_text('<script type="module" src="/assets/js/a.js"></script>')
    (tmp_path / "js" / "a.js").write_text('import { b } from "./b.js";\nexport const a = b;\n')
    (tmp_path / "js" / "b.js").write_text("export const b = 1;\n//# sourceMappingURL=b.js.map\n")
    first = Dashboard.load(tmp_path)
    a_name, b_name = first.names["js/a.js"], first.names["js/b.js"]
    assert first.shell.body.decode() == f'<script type="module" src="/assets/{a_name}"></script>'
    assert f'from "./{Path(b_name).name}"' in first.assets[a_name].body.decode()
    assert b"sourceMappingURL" not in first.assets[b_name].body

    # Changing a module renames it and every module that imports it.
    (tmp_path / "js" / "b.js").write_text("export const b = 2;\n")
    Dashboard.load.cache_clear()
    second = Dashboard.load(tmp_path)
    assert second.names["js/b.js"] != b_name and second.names["js/a.js"] != a_name


def test_broken_references_are_refused_at_start(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text('<link href="/assets/missing.css">')
    with pytest.raises(AssetGraphError, match=r"missing\.css"):
        Dashboard.load(tmp_path)
    (tmp_path / "index.html").write_text('<script src="/assets/a.js"></script>')
    (tmp_path / "a.js").write_text('import "./b.js";')
    (tmp_path / "b.js").write_text('import "./a.js";')
    with pytest.raises(AssetGraphError, match="loop"):
        Dashboard.load(tmp_path)


def test_accept_encoding_negotiation() -> None:
    both = ("br", "gzip")
    assert preferred_encoding("gzip, deflate, br", both) == "br"
    assert preferred_encoding("gzip", both) == "gzip"
    assert preferred_encoding("br;q=0, gzip;q=0.5", both) == "gzip"
    assert preferred_encoding("*", both) == "br"
    assert preferred_encoding("", both) is None
    assert preferred_encoding("br", ()) is None


def test_vendored_files_match_their_manifest() -> None:
    """scripts/vendor_assets.py without arguments checks every vendored file's SHA-256."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "vendor_assets.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
