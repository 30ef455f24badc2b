"""Every screen with a realistic account (servers online, late, offline and new, an hour of
metrics), in light and dark, on a desktop and a 360 px phone: no console error, no CSP
violation, no serious or critical axe-core finding, nothing wider than the screen (on the phone
nothing scrolling sideways and no word broken either; the servers list is cards there), and a
screenshot of each. And the first load of the servers page stays under its transfer budget."""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, Page, expect

from gateway.authn import SESSION_COOKIE
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.dashboard.support import (
    DESKTOP,
    LAYOUT_FAULTS,
    PHONE,
    chromium,
    dashboard_stack,
    new_context,
    screenshot,
    watch,
)
from tests.stack import Environment

pytestmark = pytest.mark.slow

# The budget for the first load of the servers page, compressed, everything included.
FIRST_LOAD_BUDGET_BYTES = 150 * 1024
INTERVAL = 10
# Desktop screenshots keep the top of each page: enough for the server page's first charts.
TALL = 1400
# A name as operators write them, longer than a phone's line.
LONG_NAME = "eu-west-production-database-primary"
FIGURES = ["CPU", "Memory", "Disk /", "Last seen"]


def metrics_at(t: float, seed: int) -> dict[str, float]:
    wave = math.sin(t / 600 + seed) * 0.5 + 0.5
    cpu = round(8 + 30 * wave + 6 * math.sin(t / 37 + seed), 2)
    return {
        "cpu.percent": cpu,
        "cpu.user": round(cpu * 0.7, 2),
        "cpu.system": round(cpu * 0.2, 2),
        "cpu.iowait": round(cpu * 0.05, 2),
        "mem.total_bytes": 8 * 1024**3,
        "mem.used_bytes": round((3.1 + wave) * 1024**3),
        "mem.cached_bytes": round(2.2 * 1024**3),
        "mem.buffers_bytes": round(0.3 * 1024**3),
        "mem.used_percent": round((3.1 + wave) / 8 * 100, 2),
        "swap.total_bytes": 2 * 1024**3,
        "swap.used_bytes": 64 * 1024**2,
        "swap.used_percent": 3.13,
        "load.1": round(0.4 + 1.6 * wave, 2),
        "load.5": round(0.5 + 1.2 * wave, 2),
        "load.15": round(0.6 + 0.8 * wave, 2),
        "disk.root.used_percent": 58.4 + seed,
        "disk.root.used_bytes": round((58.4 + seed) / 100 * 100 * 1024**3),
        "disk.root.total_bytes": 100 * 1024**3,
        "net.eth0.rx_bytes_per_s": round(180_000 * wave + 20_000),
        "net.eth0.tx_bytes_per_s": round(60_000 * wave + 5_000),
        "proc.count": 180 + seed * 7,
        "uptime.seconds": 86_400 * (3 + seed) + t % 86_400,
    }


async def post_history(
    http: aiohttp.ClientSession, url: str, api_key: str, end: float, seed: int
) -> None:
    """An hour of samples every INTERVAL seconds, ending at `end`."""
    samples = [
        {"ts": t, "metrics": metrics_at(t, seed)}
        for t in (end - 3600 + i * INTERVAL for i in range(3600 // INTERVAL))
    ]
    async with http.post(
        f"{url}/api/v1/metrics", json={"samples": samples}, headers={"X-API-Key": api_key}
    ) as response:
        assert response.status == 202, await response.text()


async def seed_account(
    admin: Admin, url: str, http: aiohttp.ClientSession, clock: ManualClock
) -> dict[str, str]:
    """Servers that last delivered metrics long ago (offline), a minute ago (late: warning),
    just now (online), and never (initialising). "Delivered" is when the gateway committed a
    post, so the stack's clock is moved between posts; it stops just before the real time."""
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    ids: dict[str, str] = {"email": email}
    for seed, (name, advance) in enumerate(
        (
            ("backup-1", 0),
            ("cache-1", 939),
            ("web-1", 60),
            ("db-1", 0),
            ("new-box", None),
            (LONG_NAME, None),
        )
    ):
        created = await admin.create_server(email, name)
        ids[name] = created.server.id
        if advance is not None:
            clock.advance(advance)
            await post_history(http, url, created.api_key, clock.now().timestamp(), seed)
    return ids


def seeding_clock() -> ManualClock:
    """Ends 1 s before the real time: identity tokens are never issued in the future."""
    return ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1000))


async def sign_in(page: Page, email: str) -> None:
    await page.goto("/sign-in")
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(STRONG_PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Servers", level=1)).to_be_visible()


async def fits_the_screen(page: Page, what: str) -> None:
    """Nothing but scrolling tables may be wider than the viewport."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{what}: the page is {overflow} px wider than the screen"


HIDE_TAB = """
for (const [name, value] of [["hidden", true], ["visibilityState", "hidden"]]) {
  Object.defineProperty(document, name, { value, configurable: true });
}
document.dispatchEvent(new Event("visibilitychange"));
"""
SHOW_TAB = """
delete document.hidden; delete document.visibilityState;
document.dispatchEvent(new Event("visibilitychange"));
"""


async def phone_cards(page: Page, url: str, ids: dict[str, str]) -> None:
    """On a phone the servers list is one card per server: name and status on top, every key
    figure beneath and on the screen, no word broken; a tap anywhere on a card opens it."""
    await page.goto("/servers")
    cards = page.get_by_role("list", name="Servers").get_by_role("listitem")
    await expect(cards).to_have_count(6)
    web = cards.filter(has_text="web-1")
    await expect(web.locator(".spark svg")).to_be_visible()
    await expect(page.get_by_role("table")).to_have_count(0)
    for card in await cards.all():
        await expect(card.locator("dt")).to_have_text(FIGURES)
        await expect(card.locator(".status")).to_be_visible()
        for figure in await card.locator("dd").all():
            box = await figure.bounding_box()
            assert box is not None and box["width"] > 0 and box["height"] > 0
            assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    await expect(cards.filter(has_text=LONG_NAME).locator("dd").last).to_have_text(
        "Waiting for the first check-in"
    )
    assert await page.evaluate(LAYOUT_FAULTS) == []
    # A tap on the figures, not on the name: the name's link covers the whole card.
    await web.scroll_into_view_if_needed()
    figures = await web.locator("dl").bounding_box()
    assert figures is not None
    await page.touchscreen.tap(
        figures["x"] + figures["width"] / 2, figures["y"] + figures["height"] / 2
    )
    await expect(page).to_have_url(f"{url}/servers/{ids['web-1']}")


async def refreshes_only_while_visible(page: Page) -> None:
    """The servers list asks the API every few seconds while the tab is visible, never while
    it is hidden, and at once when it is shown again."""
    asked: list[str] = []
    page.on(
        "request",
        lambda r: asked.append(r.url) if r.url.endswith("/api/v1/servers?limit=200") else None,
    )
    await page.goto("/servers")
    await page.wait_for_timeout(6_000)
    assert len(asked) >= 2, asked
    await page.evaluate(HIDE_TAB)
    hidden_from = len(asked)
    await page.wait_for_timeout(6_000)
    assert len(asked) == hidden_from, "the list refreshed while the tab was hidden"
    await page.evaluate(SHOW_TAB)
    await page.wait_for_timeout(1_000)
    assert len(asked) > hidden_from, "showing the tab did not refresh the list"


async def tour(browser: Browser, url: str, ids: dict[str, str], size: str) -> None:
    viewport = DESKTOP if size == "desktop" else PHONE
    context = await new_context(
        browser, url, viewport=viewport, is_mobile=size == "phone", has_touch=size == "phone"
    )
    watched = await watch(context)
    page = watched.page
    await sign_in(page, ids["email"])
    web = ids["web-1"]
    screens = [
        (
            "servers",
            "/servers",
            page.locator("[data-server-id]", has_text="web-1").locator(".spark svg"),
        ),
        ("server", f"/servers/{web}", page.locator(".chart-card canvas").first),
        ("server-activity", f"/servers/{web}/activity", page.locator("tbody tr").first),
        ("server-settings", f"/servers/{web}/settings", page.get_by_test_id("key-hint")),
        ("activity", "/activity", page.locator("#sign-in-activity-kind")),
        ("account", "/account", page.get_by_text("This session")),
    ]
    for theme in ("light", "dark"):
        await page.emulate_media(color_scheme=theme)
        for name, path, ready in screens:
            await page.goto(path)
            await expect(ready).to_be_visible()
            await page.wait_for_load_state("networkidle")
            what = f"{name}, {theme}, {size}"
            await fits_the_screen(page, what)
            if size == "phone":
                assert await page.evaluate(LAYOUT_FAULTS) == [], what
            await watched.assert_clean(what)
            await screenshot(
                page, f"{name}-{theme}-{size}", height=TALL if size == "desktop" else None
            )
    await page.emulate_media(color_scheme="dark")
    statuses = page.locator("[data-server-id] .status")
    await page.goto("/servers")
    await expect(statuses).to_have_text(
        ["Offline", "Warning", "Initialising", "Initialising", "Online", "Online"]
    )
    await page.get_by_label("Search servers by name").fill("db")
    await expect(page.locator("[data-server-id]")).to_have_count(1)
    await page.get_by_label("Search servers by name").fill("nothing-like-this")
    await expect(page.get_by_text("No server's name contains")).to_be_visible()
    await watched.assert_clean(f"servers, no match, {size}")
    if size == "phone":
        await phone_cards(page, url, ids)
    if size == "desktop":
        await refreshes_only_while_visible(page)
        # Ctrl-K: the command palette goes to a server by name, from the keyboard.
        await page.keyboard.press("Control+k")
        palette = page.get_by_role("dialog", name="Command palette")
        await expect(palette).to_be_visible()
        await expect(palette.get_by_role("option", name="db-1").first).to_be_visible()
        await watched.assert_clean("command palette")
        await page.keyboard.type("db-1")
        await page.keyboard.press("Enter")
        await expect(page).to_have_url(f"{url}/servers/{ids['db-1']}")
    await context.close()


@dataclass
class Seeded:
    url: str
    browser: Browser
    http: aiohttp.ClientSession
    ids: dict[str, str]


@contextlib.asynccontextmanager
async def seeded(env: Environment, admin: Admin) -> AsyncIterator[Seeded]:
    """A stack with the seeded account, a browser, and a client for the API."""
    clock = seeding_clock()
    async with (
        dashboard_stack(env, clock=clock) as running,
        chromium(env) as browser,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=env.client_ssl())) as http,
    ):
        ids = await seed_account(admin, running.url, http, clock)
        yield Seeded(running.url, browser, http, ids)


async def test_every_screen_in_both_themes_on_desktop_and_phone(
    env: Environment, admin: Admin
) -> None:
    async with seeded(env, admin) as account:
        for size in ("desktop", "phone"):
            await tour(account.browser, account.url, account.ids, size)


async def session_cookie(http: aiohttp.ClientSession, url: str, email: str) -> str:
    async with http.post(
        f"{url}/api/v1/auth/login", json={"email": email, "password": STRONG_PASSWORD}
    ) as response:
        assert response.status == 200
        return response.cookies[SESSION_COOKIE].value


async def first_load_bytes(browser: Browser, url: str, session: str) -> dict[str, Any]:
    """What the servers page transfers with a cold cache, signed in, until the network is idle."""
    context = await new_context(browser, url, viewport=DESKTOP)
    await context.add_cookies([{"name": SESSION_COOKIE, "value": session, "url": url}])
    await context.add_init_script("localStorage.setItem('scout.signed-in', '1')")
    page = await context.new_page()
    responses = []
    page.on("requestfinished", lambda request: responses.append(request))
    await page.goto("/servers")
    await expect(page.locator("tr", has_text="web-1").locator(".spark svg")).to_be_visible()
    await page.wait_for_load_state("networkidle")
    sizes = [await request.sizes() for request in responses]
    total = sum(s["responseBodySize"] + s["responseHeadersSize"] for s in sizes)
    encodings: dict[str, str | None] = {}
    for request in responses:
        answer = await request.response()
        if "/assets/" in request.url and answer is not None:
            encodings[request.url.rsplit("/", 1)[-1]] = answer.headers.get("content-encoding")
    await context.close()
    return {"total": total, "requests": len(responses), "encodings": encodings}


async def test_first_load_of_the_servers_page_is_under_150_kb(
    env: Environment, admin: Admin
) -> None:
    async with seeded(env, admin) as account:
        session = await session_cookie(account.http, account.url, account.ids["email"])
        measured = await first_load_bytes(account.browser, account.url, session)
        assert measured["encodings"], "no asset was loaded"
        uncompressed = {n: e for n, e in measured["encodings"].items() if e != "br"}
        assert not uncompressed or all(n.endswith((".svg", ".png")) for n in uncompressed), (
            uncompressed
        )
        assert measured["total"] <= FIRST_LOAD_BUDGET_BYTES, measured
