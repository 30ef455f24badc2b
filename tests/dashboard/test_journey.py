"""The whole journey of a new user in real Chromium against a real stack: sign in, add a server
(keyboard only), its key shown once, metrics posted with it shown exactly, regenerate the key
(keyboard only) and the old key refused at once, the activity of both, a second browser's
session ended from the first, sign out. Every screen: no console error, no CSP violation, no
serious or critical axe-core finding; screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import aiohttp
import pytest
from playwright.async_api import Page, Response, expect

from gateway.app_keys import USAGE
from scout_admin.commands import Admin
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.dashboard.support import (
    DESKTOP,
    PHONE,
    Watched,
    chromium,
    dashboard_stack,
    new_context,
    screenshot,
    watch,
)
from tests.stack import Environment

pytestmark = pytest.mark.slow

KEY = re.compile(r"^[0-9a-f]{64}$")
NOW_CPU = 37.5
NEW_PASSWORD = "a different passphrase, 77 long"


async def post_samples(
    http: aiohttp.ClientSession, url: str, api_key: str, samples: list[dict[str, Any]]
) -> int:
    async with http.post(
        f"{url}/api/v1/metrics", json={"samples": samples}, headers={"X-API-Key": api_key}
    ) as response:
        await response.read()
        return response.status


def samples(now: float) -> list[dict[str, Any]]:
    """Three minutes of one server, one sample a minute, values that print exactly."""
    return [
        {
            "ts": now - 120 + 60 * i,
            "metrics": {
                "cpu.percent": cpu,
                "cpu.user": cpu - 2.5,
                "mem.used_percent": 41.25,
                "mem.used_bytes": 2 * 1024**3,
                "mem.total_bytes": 4 * 1024**3,
                "load.1": 0.75,
                "load.5": 0.5,
                "load.15": 0.25,
                "disk.root.used_percent": 63.5,
                "net.eth0.rx_bytes_per_s": 1024,
                "net.eth0.tx_bytes_per_s": 512,
                "proc.count": 123,
                "app.queue_depth": 7,
            },
        }
        for i, cpu in enumerate((12.5, 25.0, NOW_CPU))
    ]


async def sign_in(watched: Watched, email: str, password: str = STRONG_PASSWORD) -> None:
    page = watched.page
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()


async def keyboard_until(page: Page, name: str, limit: int = 60) -> None:
    """Press Tab until the focused element is the control named `name`."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "(() => { const e = document.activeElement;"
            " return (e.getAttribute('aria-label') || e.textContent || '').trim(); })()"
        )
        if focused == name:
            return
    raise AssertionError(f"{name!r} cannot be reached with the keyboard")


async def read_block(page: Page, label: str) -> str:
    text: str = await page.get_by_label(label, exact=True).inner_text()
    return text.strip()


# The overview's range buttons after the first, and their spans in seconds.
RANGES = (("6 h", 6 * 3600), ("24 h", 86400), ("7 d", 7 * 86400), ("30 d", 30 * 86400))


def cpu_chart_query(span: int) -> Callable[[Response], bool]:
    """A predicate of the CPU chart's metric query over a range of `span` seconds."""

    def matches(response: Response) -> bool:
        parts = urlsplit(response.url)
        if not parts.path.endswith("/metrics"):
            return False
        asked = parse_qs(parts.query)
        if "cpu.percent" not in ",".join(asked.get("names", [])):
            return False
        start, end = (datetime.fromisoformat(asked[k][0]) for k in ("from", "to"))
        return round((end - start).total_seconds()) == span

    return matches


async def test_the_whole_journey(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with (
        dashboard_stack(env) as running,
        chromium(env) as browser,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=env.client_ssl())) as agent,
    ):
        url = running.url
        context = await new_context(browser, url, viewport=DESKTOP)
        await context.grant_permissions(["clipboard-read", "clipboard-write"])
        watched = await watch(context)
        page = watched.page

        # Sign in: a wrong password is refused without saying which part was wrong.
        await page.goto("/servers")
        await expect(page).to_have_url(re.compile(r"/sign-in\?next=%2Fservers$"))
        await watched.assert_clean("sign-in")
        await screenshot(page, "journey-sign-in-light-desktop")
        watched.expect(401, "/api/v1/auth/login")
        await sign_in(watched, email, "not the password at all")
        await expect(page.get_by_role("alert")).to_have_text("The email or password is wrong.")
        await sign_in(watched, email)
        await expect(page.get_by_role("heading", name="Servers", level=1)).to_be_visible()
        await expect(page).to_have_url(f"{url}/servers")
        await expect(page.get_by_role("heading", name="Add your first server")).to_be_visible()
        await watched.assert_clean("servers, empty")
        await screenshot(page, "journey-servers-empty-light-desktop")

        # Add a server with the keyboard only; its key is shown once.
        await page.locator("body").focus()
        await keyboard_until(page, "Add server")
        await page.keyboard.press("Enter")
        dialog = page.get_by_role("dialog", name="Add a server")
        await expect(dialog).to_be_visible()
        await expect(page.get_by_label("Name", exact=True)).to_be_focused()
        await page.keyboard.type("web-1")
        await page.keyboard.press("Enter")
        shown = page.get_by_role("dialog", name="web-1 was added")
        await expect(shown).to_be_visible()
        api_key = await read_block(page, "API key")
        assert KEY.match(api_key), api_key
        assert await read_block(page, "agent.env content") == (
            f"SCOUTAPIKEY={api_key}\nSCOUTURL={url}"
        )
        install = await read_block(page, "install command")
        assert f"curl -fsSLo scout-agent.pyz {url}/downloads/scout-agent.pyz" in install
        assert f"echo '{api_key}' | sudo python3 scout-agent.pyz install --url {url}" in install
        await expect(shown.get_by_text("Waiting for the first check-in")).to_be_visible()
        await watched.assert_clean("add server: the key")
        await screenshot(page, "journey-add-server-key-light-desktop")
        await page.get_by_role("button", name="Copy API key").click()
        assert await page.evaluate("navigator.clipboard.readText()") == api_key
        await page.keyboard.press("Escape")
        confirm = page.get_by_role("dialog", name="Close without the key?")
        await expect(confirm).to_contain_text("will not be shown again")
        await expect(page.get_by_role("button", name="Back to the key")).to_be_focused()
        await page.keyboard.press("Tab")
        await page.keyboard.press("Enter")
        await expect(confirm).to_be_hidden()
        row = page.locator("tr", has_text="web-1")
        await expect(row).to_contain_text("Initialising")
        server_id = await row.get_attribute("data-server-id")
        assert server_id

        # Never again after a reload: only the hint.
        await page.reload()
        await expect(page.locator("tr", has_text="web-1")).to_be_visible()
        assert api_key not in await page.content()
        await page.goto(f"/servers/{server_id}/settings")
        await expect(page.get_by_test_id("key-hint")).to_have_text(f"…{api_key[-4:]}")
        assert api_key not in await page.content()

        # Metrics posted with that key are what the page shows.
        assert await post_samples(agent, url, api_key, samples(time.time())) == 202
        await page.goto(f"/servers/{server_id}")
        await expect(page.locator(".status.online").first).to_be_visible()
        tile = page.locator('[data-metric="cpu.percent"] .value')
        await expect(tile).to_have_text("37.5 %")
        memory = page.locator('[data-metric="mem.used_percent"]')
        await expect(memory.locator(".value")).to_have_text("41.25 %")
        await expect(memory.locator(".detail")).to_have_text("2 GiB of 4 GiB")
        await expect(page.locator('[data-metric="load.1"] .value')).to_have_text("0.75")
        await expect(page.locator('[data-metric="disk.root.used_percent"] .value')).to_have_text(
            "63.5 %"
        )
        await expect(page.locator('[data-metric="net.eth0.rx_bytes_per_s"] .value')).to_have_text(
            "1 KiB/s"
        )
        cpu_chart = page.locator("section.chart-card", has=page.get_by_role("heading", name="CPU"))
        await expect(cpu_chart.locator(".chart-legend")).to_contain_text("total37.5 %")
        await cpu_chart.get_by_text("Values (newest").click()
        cells = cpu_chart.locator("tbody tr td:nth-child(2)")
        await expect(cells).to_have_text(["37.5 %", "25 %", "12.5 %"])
        await cpu_chart.locator(".u-over").hover()
        await expect(cpu_chart.locator(".chart-legend .when")).to_contain_text("At:")
        await watched.assert_clean("server overview")
        await screenshot(page, "journey-server-light-desktop")
        await page.emulate_media(color_scheme="dark")
        await watched.assert_clean("server overview, dark")
        await screenshot(page, "journey-server-dark-desktop", full_page=False)
        await (
            page.get_by_role("navigation", name="Main").get_by_role("link", name="Servers").click()
        )
        await expect(page.locator("tr", has_text="web-1").locator(".spark svg")).to_be_visible()
        await watched.assert_clean("servers, dark")
        await screenshot(page, "journey-servers-dark-desktop", full_page=False)
        await page.emulate_media(color_scheme="light")
        await screenshot(page, "journey-servers-light-desktop", full_page=False)
        await page.goto(f"/servers/{server_id}")
        await expect(tile).to_have_text("37.5 %")
        for label, span in RANGES:
            async with page.expect_response(cpu_chart_query(span)) as chart_query:
                await page.get_by_role("button", name=label, exact=True).click()
            # The chart asks by its width; the API's step gives at most that many points.
            answer = await chart_query.value
            asked = parse_qs(urlsplit(answer.url).query)
            assert "step" not in asked, answer.url
            points, body = int(asked["points"][0]), await answer.json()
            assert 20 <= points <= 1000 and body["step_seconds"] * points >= span
            assert all(len(series["points"]) <= points for series in body["series"])
            await expect(page.get_by_role("button", name=label, exact=True)).to_have_attribute(
                "aria-pressed", "true"
            )
            # The newest bucket holds the newest sample: its average or the top of its range.
            await expect(cpu_chart.locator(".chart-legend")).to_contain_text("37.5 %")
            await expect(cpu_chart.locator(".chart-legend")).to_contain_text("bucket")
        await page.get_by_role("button", name="1 h", exact=True).click()

        # Regenerate with the keyboard only; the old key is refused at once.
        tabs = page.get_by_role("navigation", name="Server")
        await tabs.get_by_role("link", name="Settings").click()
        await expect(page.get_by_role("heading", name="API key")).to_be_visible()
        await running.app[USAGE].flush()
        await expect(page.get_by_test_id("key-last-used")).to_contain_text(
            "127.0.0.1", timeout=15_000
        )
        await watched.assert_clean("server settings")
        await page.locator("body").focus()
        await keyboard_until(page, "Regenerate API key")
        await page.keyboard.press("Enter")
        rotate = page.get_by_role("dialog", name="Regenerate the API key of web-1?")
        await expect(rotate).to_contain_text("stops working at once, on every gateway")
        await expect(rotate.get_by_label("Keep the old key working for")).to_have_value("0")
        await watched.assert_clean("regenerate: confirmation")
        await keyboard_until(page, "Regenerate key")
        await page.keyboard.press("Enter")
        new_dialog = page.get_by_role("dialog", name="New API key of web-1")
        await expect(new_dialog).to_be_visible()
        line = await read_block(page, "SCOUTAPIKEY line")
        new_key = line.removeprefix("SCOUTAPIKEY=")
        assert KEY.match(new_key) and new_key != api_key
        assert await post_samples(agent, url, api_key, samples(time.time())) == 401
        assert await post_samples(agent, url, new_key, samples(time.time())) == 202
        assert await read_block(page, "scoutctl rotate command") == (
            "sudo scoutctl key rotate 'web-1' --update-env /opt/scout-agent/agent.env"
        )
        await expect(new_dialog).to_contain_text("no longer works")
        await watched.assert_clean("regenerate: the new key")
        await screenshot(page, "journey-new-key-light-desktop")
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("dialog", name="Close without the key?")).to_be_visible()
        await page.get_by_role("button", name="Close, I copied it").click()
        await expect(page.get_by_test_id("key-hint")).to_have_text(f"…{new_key[-4:]}")

        # Rename it; pause its monitoring (status "paused"), then resume it.
        await page.get_by_label("Name", exact=True).fill("web-1 (rack 4)")
        await page.get_by_role("button", name="Rename").click()
        await expect(page.get_by_role("heading", name="web-1 (rack 4)", level=1)).to_be_visible()
        await page.get_by_role("button", name="Pause monitoring").click()
        header_status = page.locator(".page-header .status")
        await expect(header_status).to_have_text("Paused")
        await watched.assert_clean("server settings, paused")
        await page.get_by_role("button", name="Resume monitoring").click()
        await expect(header_status).to_have_text("Online")

        # Activity: the rotation and the refused attempt with the old key, filterable.
        await running.app[USAGE].flush()
        await tabs.get_by_role("link", name="Activity").click()
        await expect(page.get_by_role("heading", name="Key activity", exact=True)).to_be_visible()
        rotated = page.locator('tr[data-event-type="key.rotated"]')
        await expect(rotated).to_contain_text(f"Old key …{api_key[-4:]} stopped working at once")
        await expect(rotated).to_contain_text("You")
        refused = page.locator('tr[data-event-type="key.rejected"]')
        await expect(refused).to_contain_text("This key was rotated; 1 attempt refused")
        await expect(refused).to_contain_text(f"…{api_key[-4:]}")
        await expect(refused).to_contain_text("127.0.0.1")
        await page.get_by_label("Kind of event").select_option("key.rejected")
        await expect(page.locator("tbody tr")).to_have_count(1)
        await expect(page.locator("tbody tr")).to_have_attribute("data-event-type", "key.rejected")
        await watched.assert_clean("server activity")
        await screenshot(page, "journey-activity-light-desktop")

        # A second browser's session, ended from the first, is sent to sign in.
        other = await new_context(browser, url, viewport=PHONE, is_mobile=True, has_touch=True)
        second = await watch(other)
        await second.page.goto("/servers")
        await sign_in(second, email)
        await expect(second.page.get_by_role("listitem").filter(has_text="web-1")).to_be_visible()
        await screenshot(second.page, "journey-servers-light-phone")
        await second.page.emulate_media(color_scheme="dark")
        await second.page.goto(f"/servers/{server_id}")
        await expect(second.page.locator('[data-metric="cpu.percent"] .value')).to_have_text(
            "37.5 %"
        )
        await second.assert_clean("server overview, phone, dark")
        await screenshot(second.page, "journey-server-dark-phone")
        await page.get_by_role("link", name="Account").click()
        sessions = page.locator("tbody tr")
        await expect(sessions).to_have_count(2)
        await expect(page.locator("tr", has_text="This session")).to_have_count(1)
        await watched.assert_clean("account")
        await screenshot(page, "journey-account-light-desktop")
        # Declared before the session ends: the second page's next poll may come at once.
        server_api = f"/api/v1/servers/{server_id}"
        for path in ("", "/metrics/latest", "/metrics", "/metric-names"):
            second.expect(401, server_api + path)
        await page.locator("tr", has_not_text="This session").get_by_role("button").click()
        await expect(sessions).to_have_count(1)
        await expect(page.get_by_role("status").first).to_contain_text("was ended")
        await expect(second.page).to_have_url(
            re.compile(rf"/sign-in\?next=%2Fservers%2F{server_id}$"), timeout=15_000
        )
        await expect(second.page.get_by_text("Your session has ended")).to_be_visible()
        await second.assert_clean("the ended session's sign-in")
        # Signing in again returns to the page it was on.
        await sign_in(second, email)
        await expect(second.page).to_have_url(f"{url}/servers/{server_id}")

        # Changing the password ends every other session, and says so.
        await page.get_by_label("Current password").fill(STRONG_PASSWORD)
        await page.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
        await page.get_by_label("Repeat the new password").fill(NEW_PASSWORD)
        await page.get_by_role("button", name="Change password").click()
        password = page.get_by_role("region", name="Change password")
        await expect(password.get_by_role("status")).to_contain_text(
            "Your password was changed. 1 other session was signed out; this one stays signed in."
        )
        await expect(second.page).to_have_url(re.compile(r"/sign-in\?next="), timeout=15_000)

        # Sign out.
        await page.get_by_role("button", name="Sign out").first.click()
        await expect(page).to_have_url(f"{url}/sign-in")
        await expect(page.get_by_text("You have signed out.")).to_be_visible()
        await page.goto(f"/servers/{server_id}")
        await expect(page).to_have_url(re.compile(r"/sign-in\?next="))
        await watched.assert_clean("signed out")
        await other.close()
        await context.close()


async def test_a_throttled_sign_in_says_how_long_to_wait(env: Environment, admin: Admin) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with dashboard_stack(env) as running, chromium(env) as browser:
        context = await new_context(browser, running.url, viewport=DESKTOP)
        watched = await watch(context)
        watched.expect(401, "/api/v1/auth/login")
        watched.expect(429, "/api/v1/auth/login")
        page = watched.page
        await page.goto("/sign-in")
        alert = page.get_by_role("alert")
        for attempt in range(5):  # LOGIN_FAILURES_PER_ACCOUNT_ADDRESS
            await sign_in(watched, email, f"wrong password {attempt}")
            await expect(alert).to_have_text("The email or password is wrong.")
        await sign_in(watched, email)  # even the right password waits now
        await expect(alert).to_contain_text("Too many failed sign-in attempts. Try again in")
        wait = page.get_by_role("button", name=re.compile(r"^Wait \d+ min"))
        await expect(wait).to_be_disabled()
        await watched.assert_clean("throttled sign-in")
        await context.close()


async def test_sign_in_returns_only_to_pages_of_this_gateway(
    env: Environment, admin: Admin
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    async with dashboard_stack(env) as running, chromium(env) as browser:
        context = await new_context(browser, running.url, viewport=DESKTOP)
        watched = await watch(context)
        page = watched.page
        for next_page in ("//example.com/servers", "/\\example.com", "https://example.com/"):
            await page.goto(f"/sign-in?next={quote(next_page)}")
            await sign_in(watched, email)
            await expect(page).to_have_url(f"{running.url}/servers")
            await page.get_by_role("button", name="Sign out").click()
            await expect(page).to_have_url(f"{running.url}/sign-in")
        await page.goto("/sign-in?next=%2Faccount")
        await sign_in(watched, email)
        await expect(page).to_have_url(f"{running.url}/account")
        await watched.assert_clean("signed in, back to the account page")
        await context.close()
