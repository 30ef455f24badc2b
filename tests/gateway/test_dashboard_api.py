"""What the dashboard needs from the public API: a server's status decided by the gateway, the
key's last-used address, and activity filtered by type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway.server_status import ServerStatus, StatusRule
from scout_admin.commands import Admin
from tests.gateway.keys_support import new_server, rotate
from tests.gateway.metrics_support import body, sign_in, stack_clock
from tests.stack import Environment, client_session, running_stack

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_status_rule_counts_agent_intervals() -> None:
    rule = StatusRule(agent_interval_seconds=5, warning_intervals=3, offline_intervals=12)
    seen = NOW - timedelta(seconds=15)
    assert rule.status(None, NOW, known=True) is ServerStatus.INITIALISING
    assert rule.status(NOW, NOW, known=True) is ServerStatus.ONLINE
    assert rule.status(seen, NOW, known=True) is ServerStatus.ONLINE
    assert rule.status(seen - timedelta(seconds=1), NOW, known=True) is ServerStatus.WARNING
    assert rule.status(NOW - timedelta(seconds=60), NOW, known=True) is ServerStatus.WARNING
    assert rule.status(NOW - timedelta(seconds=61), NOW, known=True) is ServerStatus.OFFLINE
    assert rule.status(NOW, NOW, known=False) is ServerStatus.UNKNOWN
    with pytest.raises(ValueError, match="offline_intervals"):
        StatusRule(10, 5, 5)


async def _get(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any]:
    async with http.get(url, headers=headers) as response:
        return response.status, await response.json()


async def test_status_follows_last_seen_and_the_configured_interval(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    clock = stack_clock()
    overrides = {"AGENT_INTERVAL_SECONDS": "2", "STATUS_WARNING_INTERVALS": "2"}
    async with (
        running_stack(env, clock=clock, gateway_overrides=overrides) as stack,
        client_session(env) as http,
    ):
        url = f"{stack.gateway.url}/api/v1/servers/{server.server_id}"
        key = {"X-API-Key": server.api_key}
        assert (await _get(http, url, **key))[1]["server"]["status"] == "initialising"
        async with http.post(
            f"{stack.gateway.url}/api/v1/metrics",
            json=body((clock.now().timestamp(), {"cpu.percent": 3.0})),
            headers=key,
        ) as response:
            assert response.status == 202
        # Thresholds: 2 intervals of 2 s (warning after 4 s), 12 intervals (offline after 24 s).
        for advance, expected in ((4, "online"), (1, "warning"), (19, "warning"), (1, "offline")):
            clock.advance(advance)
            status, answer = await _get(http, url, **key)
            assert status == 200 and answer["server"]["status"] == expected, advance
            listed = (await _get(http, f"{stack.gateway.url}/api/v1/servers", **key))[1]
            assert listed["servers"][0]["status"] == expected
        assert answer["server"]["last_seen_at"].endswith("Z")


async def test_ingest_down_makes_status_unknown_not_initialising(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack, client_session(env) as http:
        await stack.ingest.stop(0)
        status, answer = await _get(
            http,
            f"{stack.gateway.url}/api/v1/servers/{server.server_id}",
            **{"X-API-Key": server.api_key},
        )
        assert status == 200
        assert answer["server"]["status"] == "unknown"
        assert answer["server"]["last_seen_at"] is None


async def test_key_last_used_address_and_activity_filters(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    async with (
        running_stack(env) as stack,
        # No cookie jar: the session travels in the headers, so key requests carry no cookie.
        client_session(env, cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        gateway = stack.gateway
        base = f"{gateway.url}/api/v1/servers/{server.server_id}"
        status, fresh = await _get(http, base, **{"X-API-Key": server.api_key})
        assert fresh["server"]["key_last_used_address"] is None
        new_key = await rotate(admin, server)
        for _ in range(2):
            async with http.get(base, headers={"X-API-Key": server.api_key}) as response:
                assert response.status == 401
        await gateway.usage.flush()
        session = await sign_in(http, gateway.url, server.email)
        status, answer = await _get(http, base, **session)
        assert answer["server"]["key_last_used_address"] is None  # the new key is unused
        await _get(http, base, **{"X-API-Key": new_key})
        await gateway.usage.flush()
        status, answer = await _get(http, base, **session)
        assert answer["server"]["key_last_used_address"] == "127.0.0.1"

        status, page = await _get(http, f"{base}/activity?type=key.rotated,key.rejected", **session)
        assert status == 200
        assert sorted(e["type"] for e in page["events"]) == ["key.rejected", "key.rotated"]
        status, page = await _get(
            http, f"{base}/activity?type=key.created&type=key.used", **session
        )
        assert {e["type"] for e in page["events"]} == {"key.created", "key.used"}
        status, problem = await _get(http, f"{base}/activity?type=key.exploded", **session)
        assert status == 422 and "key.rotated" in problem["detail"]

        signins = f"{gateway.url}/api/v1/auth/activity"
        status, page = await _get(http, f"{signins}?type=login.succeeded", **session)
        assert status == 200 and page["events"]
        assert {e["type"] for e in page["events"]} == {"login.succeeded"}
        status, page = await _get(http, f"{signins}?type=logout", **session)
        assert status == 200 and page["events"] == []
        status, problem = await _get(http, f"{signins}?type=key.used", **session)
        assert status == 422 and "login.failed" in problem["detail"]


async def test_rename_pause_and_resume_a_server(env: Environment, admin: Admin) -> None:
    server = await new_server(admin, name="web-1")
    async with (
        running_stack(env) as stack,
        client_session(env, cookie_jar=aiohttp.DummyCookieJar()) as http,
    ):
        url = f"{stack.gateway.url}/api/v1/servers/{server.server_id}"
        session = await sign_in(http, stack.gateway.url, server.email)

        async def patch(body: Any, **headers: str) -> tuple[int, Any]:
            async with http.patch(url, json=body, headers=headers or session) as response:
                return response.status, await response.json()

        status, answer = await patch({"name": "  web-01 "})
        assert status == 200 and answer["server"]["name"] == "web-01"
        assert answer["server"]["paused_at"] is None
        status, answer = await patch({"paused": True})
        assert status == 200 and answer["server"]["status"] == "paused"
        assert answer["server"]["paused_at"].endswith("Z")
        # A paused server's agent may still post; it stays paused until resumed.
        async with http.post(
            f"{stack.gateway.url}/api/v1/metrics",
            json=body((datetime.now(UTC).timestamp(), {"cpu.percent": 1.0})),
            headers={"X-API-Key": server.api_key},
        ) as response:
            assert response.status == 202
        assert (await _get(http, url, **session))[1]["server"]["status"] == "paused"
        status, answer = await patch({"paused": False})
        assert answer["server"]["status"] == "online" and answer["server"]["paused_at"] is None

        status, page = await _get(http, f"{url}/activity?type=server.renamed", **session)
        (renamed,) = page["events"]
        assert renamed["details"] == {"old_name": "web-1", "name": "web-01"}
        assert renamed["actor"].startswith("user:") and renamed["client_address"] == "127.0.0.1"
        status, page = await _get(
            http, f"{url}/activity?type=server.paused,server.resumed", **session
        )
        assert [e["type"] for e in page["events"]] == ["server.resumed", "server.paused"]

        for bad in ({}, {"name": ""}, {"name": 5}, {"paused": "yes"}, {"id": "x"}):
            status, problem = await patch(bad)
            assert status == 422, bad
            assert problem["status"] == 422
        status, _ = await patch({"name": "x"}, **{"X-API-Key": server.api_key})
        assert status == 403
