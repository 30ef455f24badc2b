"""Browser tests of the dashboard: a real stack, a real HTTPS gateway on its own port, Debian's
Chromium driven by Playwright, and the checks every page must pass (console, CSP, axe-core)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.async_api import Browser, BrowserContext, ConsoleMessage, Page, async_playwright

from gateway.app import create_app, create_ssl_context
from gateway.settings import Settings as GatewaySettings
from scout_kit.clock import Clock
from tests.stack import Environment, Stack, running_stack

CHROMIUM = os.environ.get("SCOUT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1360, "height": 900}
PHONE = {"width": 360, "height": 740}
# What a phone-width screen must not do, as a list of faults (empty when clean): scroll the page
# or any box sideways, put a word off the screen, or break a word across lines (a break right
# after a hyphen is a line break, not a broken word). Hidden text is not looked at.
LAYOUT_FAULTS = r"""
() => {
  const width = document.documentElement.clientWidth;
  const faults = [];
  const shown = (el) => el.closest(".visually-hidden") === null && el.checkVisibility();
  const name = (el) => el.tagName.toLowerCase() + [...el.classList].map((c) => `.${c}`).join("");
  const wider = document.documentElement.scrollWidth - width;
  if (wider > 0) faults.push(`the page is ${wider} px wider than the screen`);
  for (const el of document.querySelectorAll("#app *")) {
    const sideways = ["auto", "scroll", "hidden"].includes(getComputedStyle(el).overflowX);
    if (sideways && el.scrollWidth > el.clientWidth + 1 && shown(el)) {
      faults.push(`${name(el)} scrolls sideways (${el.scrollWidth} px in ${el.clientWidth} px)`);
    }
  }
  const texts = document.createTreeWalker(document.querySelector("#app"), NodeFilter.SHOW_TEXT);
  for (let node = texts.nextNode(); node; node = texts.nextNode()) {
    if (!shown(node.parentElement)) continue;
    for (const match of node.textContent.matchAll(/[^\s-]+-?/g)) {
      const range = document.createRange();
      range.setStart(node, match.index);
      range.setEnd(node, match.index + match[0].length);
      const boxes = [...range.getClientRects()].filter((r) => r.width > 0);
      const where = `"${match[0]}" in ${name(node.parentElement)}`;
      if (new Set(boxes.map((r) => Math.round(r.top))).size > 1) faults.push(`${where} is broken`);
      const off = boxes.some((r) => r.left < -0.5 || r.right > width + 0.5);
      if (off) faults.push(`${where} is off the screen`);
    }
  }
  return faults;
}
"""
# Recorded in the page before any of its scripts run (an init script is outside the CSP).
CSP_LISTENER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  const where = `${e.sourceFile}:${e.lineNumber}`;
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${where}`);
});
"""


def spki_pin(cert_file: str) -> str:
    """base64 SHA-256 of the certificate's public key: Chromium trusts exactly this one."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@dataclass
class DashboardStack:
    stack: Stack
    app: web.Application
    url: str


@contextlib.asynccontextmanager
async def dashboard_stack(
    env: Environment, *, clock: Clock | None = None
) -> AsyncIterator[DashboardStack]:
    """The services and one gateway whose PUBLIC_URL is the address the browser uses (the
    CSRF origin check compares them), on a socket bound before the settings are made."""
    async with running_stack(env, gateways=0, clock=clock) as stack:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        url = f"https://localhost:{port}"
        settings = GatewaySettings.from_env(env.gateway_env(stack.backends, PUBLIC_URL=url))
        app = create_app(settings, clock=clock)
        runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
        try:
            await runner.setup()
            await web.SockSite(runner, sock, ssl_context=create_ssl_context(settings)).start()
            yield DashboardStack(stack, app, url)
        finally:
            await runner.cleanup()
            sock.close()


@contextlib.asynccontextmanager
async def chromium(env: Environment) -> AsyncIterator[Browser]:
    if not os.path.isfile(CHROMIUM):  # noqa: ASYNC240 (one stat, before any browser runs)
        pytest.fail(
            f"Chromium is needed for the dashboard's browser tests and {CHROMIUM} is missing: "
            "install the Debian package `chromium` (apt-get install chromium).",
            pytrace=False,
        )
    flags = [*CHROMIUM_FLAGS, f"--ignore-certificate-errors-spki-list={spki_pin(env.cert_file)}"]
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=flags)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    """A page with every console error and uncaught exception it produced. An API answer the
    test provokes on purpose (a wrong password's 401) is declared with `expect`; Chromium logs
    each failed fetch as a console error."""

    page: Page
    errors: list[str] = field(default_factory=list)
    expected: list[tuple[int, str]] = field(default_factory=list)

    def expect(self, status: int, path: str) -> None:
        self.expected.append((status, path))

    def _expected(self, message: ConsoleMessage) -> bool:
        url = message.location.get("url", "")
        return any(
            f"status of {status}" in message.text and url.split("?")[0].endswith(path)
            for status, path in self.expected
        )

    async def csp_violations(self) -> list[str]:
        violations: list[str] = await self.page.evaluate("window.__cspViolations || []")
        return violations

    async def assert_clean(self, what: str) -> None:
        """No console error, no CSP violation, no serious or critical axe-core finding."""
        assert self.errors == [], f"{what}: console errors {self.errors}"
        assert await self.csp_violations() == [], f"{what}: CSP violations"
        findings = await axe_findings(self.page)
        assert findings == [], f"{what}: accessibility findings {json.dumps(findings, indent=1)}"


async def new_context(browser: Browser, base_url: str, **options: Any) -> BrowserContext:
    context = await browser.new_context(base_url=base_url, **options)
    await context.add_init_script(CSP_LISTENER)
    return context


async def watch(context: BrowserContext) -> Watched:
    page = await context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not watched._expected(message):
            watched.errors.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.errors.append(f"uncaught: {error}"))
    return watched


async def axe_findings(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page as it is now. axe is evaluated
    through the DevTools protocol, so the page's own CSP stays as strict as it is."""
    if not await page.evaluate("typeof window.axe !== 'undefined'"):
        await page.evaluate(AXE.read_text())
    result: dict[str, Any] = await page.evaluate("axe.run(document, {resultTypes: ['violations']})")
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:5],
        }
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def screenshot(
    page: Page, name: str, *, full_page: bool = True, height: int | None = None
) -> Path:
    """Saved for a reviewer under test-artifacts/screenshots/ (git-ignored); `height` keeps
    the top of a long page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    if height is not None:
        width = page.viewport_size["width"] if page.viewport_size else DESKTOP["width"]
        clip = {"x": 0, "y": 0, "width": width, "height": height}
        await page.screenshot(path=str(path), full_page=True, clip=clip)  # type: ignore[arg-type]
    else:
        await page.screenshot(path=str(path), full_page=full_page)
    return path
