"""Reading metrics back: downsampling checked against values computed here, latest values,
names, and who may read what (a key its own server, a user their account's; else 404)."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from gateway.metric_query import step_for_points
from gateway.problems import Problem
from scout_admin.commands import Admin, admin_actor
from tests.gateway.metrics_support import (
    body,
    new_server,
    new_user,
    post,
    sign_in,
    stack_clock,
)
from tests.stack import Environment, client_session, running_stack


async def _get(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str], **params: str
) -> tuple[int, Any]:
    async with http.get(url, headers=headers, params=params) as response:
        return response.status, await response.json()


def _iso(moment: datetime) -> str:
    # The API's one time format: RFC 3339 UTC with milliseconds.
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


async def test_downsampling_matches_values_computed_here(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    key = {"X-API-Key": server.api_key}
    rng = random.Random(5)
    # 20 minutes of samples every 7 seconds, starting off any bucket boundary.
    base = clock.now().timestamp() - 1200 + 3.25
    samples = [
        (base + 7 * i, {"cpu": rng.uniform(0, 100), "mem": float(rng.randrange(10**9))})
        for i in range(170)
    ]
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        url = stack.gateway.url
        for start in range(0, len(samples), 50):
            status, _, _ = await post(http, url, server.api_key, body(*samples[start : start + 50]))
            assert status == 202
        frm, to, step = base + 100, base + 1000, 60
        status, answer = await _get(
            http,
            f"{url}/api/v1/servers/{server.server_id}/metrics",
            key,
            names="cpu,mem",
            **{"from": str(frm), "to": str(to), "step": "1m"},
        )
        assert status == 200, answer
        assert answer["step_seconds"] == step
        expected: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
        for ts, metrics in samples:
            if frm <= ts < to:
                for name, value in metrics.items():
                    expected[name][int(ts // step) * step].append(value)
        assert [s["name"] for s in answer["series"]] == ["cpu", "mem"]
        for series in answer["series"]:
            buckets = expected[series["name"]]
            assert [p["ts"] for p in series["points"]] == [
                _iso(datetime.fromtimestamp(b, UTC)) for b in sorted(buckets)
            ]
            for point in series["points"]:
                bucket = int(datetime.fromisoformat(point["ts"].replace("Z", "+00:00")).timestamp())
                values = buckets[bucket]
                assert point["count"] == len(values)
                assert point["min"] == min(values)
                assert point["max"] == max(values)
                assert abs(point["avg"] - sum(values) / len(values)) <= 1e-9 * max(
                    1.0, abs(point["avg"])
                )

        # Defaults: the last hour, every metric, about 300 points (a step of 15 s).
        status, answer = await _get(http, f"{url}/api/v1/servers/{server.server_id}/metrics", key)
        assert status == 200
        assert answer["step_seconds"] == 15
        assert answer["to"] == _iso(clock.now())
        assert sum(p["count"] for s in answer["series"] for p in s["points"]) == 2 * 170
        # A chart asked for by its width: at most that many points, at a nice step.
        status, answer = await _get(
            http, f"{url}/api/v1/servers/{server.server_id}/metrics", key, points="50"
        )
        assert status == 200
        assert answer["step_seconds"] == 120
        assert all(len(s["points"]) <= 50 for s in answer["series"])
        assert sum(p["count"] for s in answer["series"] for p in s["points"]) == 2 * 170

        status, answer = await _get(
            http, f"{url}/api/v1/servers/{server.server_id}/metrics/latest", key
        )
        assert status == 200
        last_ts, last = samples[-1]
        assert answer["metrics"] == [
            {"name": name, "value": last[name], "ts": _iso(datetime.fromtimestamp(last_ts, UTC))}
            for name in ("cpu", "mem")
        ]
        status, answer = await _get(
            http, f"{url}/api/v1/servers/{server.server_id}/metric-names", key
        )
        assert (status, answer["names"]) == (200, ["cpu", "mem"])


async def test_oversized_and_malformed_queries_are_422(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    key = {"X-API-Key": server.api_key}
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        url = f"{stack.gateway.url}/api/v1/servers/{server.server_id}/metrics"
        now = clock.now().timestamp()
        cases: dict[str, tuple[dict[str, str], str]] = {
            "too many points": ({"from": str(now - 86400), "step": "1s"}, "step"),
            "too many names": ({"names": ",".join(f"m{i}" for i in range(51))}, "names"),
            "too many total points": (
                {"names": ",".join(f"m{i}" for i in range(30)), "step": "5s"},
                "names",
            ),
            "bad step": ({"step": "fast"}, "step"),
            "zero step": ({"step": "0s"}, "step"),
            "bad from": ({"from": "yesterday"}, "from"),
            "from after to": ({"from": str(now), "to": str(now - 60)}, "from"),
            "bad name": ({"names": "cpu percent"}, "names"),
            "no points": ({"points": "0"}, "points"),
            "too many points asked": ({"points": "1001"}, "points"),
            "points not a number": ({"points": "many"}, "points"),
            "points and step": ({"points": "100", "step": "1m"}, "points"),
            "too few points for the range": (
                {"from": str(now - 400 * 86400), "points": "1"},
                "points",
            ),
        }
        for name, (params, parameter) in cases.items():
            status, problem = await _get(http, url, key, **params)
            assert status == 422, (name, problem)
            assert problem["parameter"] == parameter, name


def test_points_choose_the_smallest_nice_step_that_fits() -> None:
    day = timedelta(days=1)
    end = datetime(2026, 12, 3, 12, tzinfo=UTC)
    month = end - 30 * day
    # A 500-point month is answered at 2 h from the hour tier, not at 5184 s.
    assert step_for_points(month, end, 500) == 7200
    assert step_for_points(month, end, 720) == 3600
    # Off a boundary 720 hourly buckets would be 721: the next nice step.
    second = timedelta(seconds=1)
    assert step_for_points(month + second, end + second, 720) == 7200
    assert step_for_points(end - timedelta(hours=1), end, 300) == 15
    # Past the nice steps: whole days.
    assert step_for_points(end - 366 * day, end, 100) == 4 * 86400
    with pytest.raises(Problem):
        step_for_points(end - 400 * day, end, 1)


async def test_who_may_read_what(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    email = await new_user(admin)
    mine = await new_server(admin, email, "web-1")
    sibling = await new_server(admin, email, "web-2")  # never posted
    other = await new_server(admin)  # another account
    now = clock.now().timestamp()
    # Cookies are sent explicitly per request: no jar may mix the two users' sessions.
    jar = aiohttp.DummyCookieJar()
    async with (
        running_stack(env, clock=clock) as stack,
        client_session(env, cookie_jar=jar) as http,
    ):
        url = stack.gateway.url
        for server in (mine, other):
            status, _, _ = await post(http, url, server.api_key, body((now, {"cpu": 1.0})))
            assert status == 202
        user = await sign_in(http, url, email)
        other_user = await sign_in(http, url, other.email)
        own_key = {"X-API-Key": mine.api_key}

        def paths(server_id: str) -> list[str]:
            base = f"{url}/api/v1/servers/{server_id}"
            return [f"{base}/metrics", f"{base}/metrics/latest", f"{base}/metric-names"]

        for path in paths(mine.server_id):
            assert (await _get(http, path, user))[0] == 200
            assert (await _get(http, path, own_key))[0] == 200
            assert (await _get(http, path, other_user))[0] == 404
        for path in paths(sibling.server_id):
            assert (await _get(http, path, user))[0] == 200
            assert (await _get(http, path, own_key))[0] == 404  # a key sees only its server
        for path in paths(other.server_id) + paths("not-a-uuid") + paths(str(uuid.uuid4())):
            status, problem = await _get(http, path, user)
            assert status == 404, path
            assert problem["status"] == 404
            assert (await _get(http, path, own_key))[0] == 404
        status, answer = await _get(http, paths(sibling.server_id)[2], user)
        assert answer["names"] == []

        # A user's session cannot post metrics.
        async with http.post(
            f"{url}/api/v1/metrics", json=body((now, {"cpu": 1.0})), headers=user
        ) as response:
            assert response.status == 403

        await admin.keys.delete_server(mine.account_id, mine.server_id, actor=admin_actor())
        for path in paths(mine.server_id):
            assert (await _get(http, path, user))[0] == 404


def test_iso_helper() -> None:
    assert (
        _iso(datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=1)) == "2030-01-01T00:00:01.000Z"
    )
