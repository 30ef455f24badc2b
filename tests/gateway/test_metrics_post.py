"""POST /api/v1/metrics: limits, atomicity, idempotence, gzip, back-pressure and shutdown,
through a real gateway (TLS), key and ingest services and PostgreSQL."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import zlib
from datetime import timedelta
from typing import Any

import pytest

from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from tests.gateway.metrics_support import (
    body,
    commits_blocked,
    gzipped,
    last_seen,
    new_server,
    post,
    stack_clock,
    stored,
    wait_for_blocked_commit,
)
from tests.stack import Environment, client_session, running_stack

LIMIT = 1024 * 1024


def _now(clock: ManualClock) -> float:
    return clock.now().timestamp()


async def test_post_is_stored_and_last_seen_kept(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    now = _now(clock)
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        url = stack.gateway.url
        status, answer, _ = await post(
            http,
            url,
            server.api_key,
            body(
                (now - 10, {"cpu.percent": 12.5, "mem.used_bytes": 1.2e9}),
                (
                    (clock.now() - timedelta(seconds=5)).isoformat().replace("+00:00", "Z"),
                    {"cpu.percent": 13},
                ),
            ),
        )
        assert (status, answer) == (202, {"accepted": 3})
        assert await last_seen(admin, server.server_id) == clock.now()
        clock.advance(30)
        status, _, _ = await post(http, url, server.api_key, body((now, {"load:1m": 0.5})))
        assert status == 202
        assert await last_seen(admin, server.server_id) == clock.now()
    rows = await stored(admin, server.server_id)
    start = clock.now() - timedelta(seconds=30)
    assert rows == [
        ("cpu.percent", start - timedelta(seconds=10), 12.5),
        ("cpu.percent", start - timedelta(seconds=5), 13.0),
        ("load:1m", start, 0.5),
        ("mem.used_bytes", start - timedelta(seconds=10), 1.2e9),
    ]


async def test_resending_creates_no_duplicates(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    payload = body(
        (_now(clock) - 60, {"cpu.percent": 1.0, "disk./:used": 2.0}),
        (_now(clock), {"cpu.percent": 3.0}),
    )
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        for _ in range(3):
            status, answer, _ = await post(http, stack.gateway.url, server.api_key, payload)
            assert (status, answer) == (202, {"accepted": 3})
    assert len(await stored(admin, server.server_id)) == 3


def _invalid_bodies(now: float) -> dict[str, tuple[Any, str]]:
    """name -> (body, a fragment the problem's detail must contain)."""
    ok = {"cpu.percent": 1.0}
    return {
        "no samples": ({"samples": []}, "non-empty"),
        "samples not a list": ({"samples": {"ts": now}}, "non-empty"),
        "too many samples": (
            {"samples": [{"ts": now - i, "metrics": ok} for i in range(1001)]},
            "At most 1000",
        ),
        "too many metrics": (body((now, {f"m{i}": 1.0 for i in range(501)})), "at most 500"),
        "bad name": (body((now, {"cpu percent": 1.0})), "must match"),
        "empty name": (body((now, {"": 1.0})), "must match"),
        "long name": (body((now, {"a" * 201: 1.0})), "must match"),
        "string value": (body((now, {"cpu": "1.0"})), "must be a number"),
        "bool value": (body((now, {"cpu": True})), "must be a number"),
        "null value": (body((now, {"cpu": None})), "must be a number"),
        "NaN": (body((now, {"cpu": float("nan")})), "finite"),
        "Infinity": (body((now, {"cpu": float("inf")})), "finite"),
        "future": (body((now + 301, ok)), "future"),
        "too old": (body((now - 31 * 86400, ok)), "retention"),
        "bad ts text": (body(("yesterday", ok)), "RFC 3339"),
        "ts without zone": (body(("2030-01-01T00:00:00", ok)), "RFC 3339"),
        "ts missing": ({"samples": [{"metrics": ok}]}, "RFC 3339"),
        "no metrics": (body((now, {})), "non-empty"),
        "sample not an object": ({"samples": [1]}, "must be an object"),
    }


async def test_every_rule_is_a_422_and_nothing_is_written(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    now = _now(clock)
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        for name, (bad, fragment) in _invalid_bodies(now).items():
            # Valid samples first: the request is refused as a whole.
            payload = bad
            if isinstance(bad.get("samples"), list) and bad["samples"] and len(bad["samples"]) < 5:
                payload = {"samples": [{"ts": now, "metrics": {"good": 1.0}}, *bad["samples"]]}
            status, problem, headers = await post(http, stack.gateway.url, server.api_key, payload)
            assert status == 422, (name, problem)
            assert headers["Content-Type"].startswith("application/problem+json"), name
            assert fragment in problem["detail"], (name, problem["detail"])
    assert await stored(admin, server.server_id) == []
    assert await last_seen(admin, server.server_id) is None


async def test_retention_is_the_ingest_services(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    now = _now(clock)
    async with (
        running_stack(env, clock=clock, ingest_overrides={"RETENTION_DAYS": "2"}) as stack,
        client_session(env) as http,
    ):
        status, problem, _ = await post(
            http,
            stack.gateway.url,
            server.api_key,
            body((now, {"a": 1.0}), (now - 3 * 86400, {"a": 2.0})),
        )
        assert status == 422
        assert "retention" in problem["detail"]
        assert "/samples/1" in problem["detail"]
    assert await stored(admin, server.server_id) == []


async def test_body_limits_media_types_and_gzip(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    server = await new_server(admin)
    now = _now(clock)
    good = body((now, {"cpu.percent": 5.0}))
    padding_len = LIMIT  # pushes the JSON text just over the limit
    oversized = {"samples": good["samples"], "pad": "x" * padding_len}
    # Compresses to a few KiB but inflates past the limit.
    bomb = gzipped(oversized)
    assert len(bomb) < LIMIT
    incompressible = json.dumps({"pad": os.urandom(LIMIT).hex()}).encode()
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        url, key = stack.gateway.url, server.api_key
        cases: list[tuple[str, int, bytes, dict[str, str]]] = [
            ("too large", 413, json.dumps(oversized).encode(), {}),
            (
                "too large chunked",
                413,
                json.dumps(oversized).encode(),
                {"Transfer-Encoding": "chunked"},
            ),
            ("inflates too large", 413, bomb, {"Content-Encoding": "gzip"}),
            (
                "compressed too large",
                413,
                gzip.compress(incompressible, 1),
                {"Content-Encoding": "gzip"},
            ),
            ("not json", 400, b"{not json", {}),
            ("json array", 400, b"[1, 2]", {}),
            ("nested too deeply", 400, b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}),
            ("not utf-8", 400, b'{"samples": "\xff"}', {}),
            ("bad gzip", 400, b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}),
            ("truncated gzip", 400, gzipped(good)[:-8], {"Content-Encoding": "gzip"}),
            ("text/plain", 415, json.dumps(good).encode(), {"Content-Type": "text/plain"}),
            ("brotli", 415, json.dumps(good).encode(), {"Content-Encoding": "br"}),
        ]
        for name, expected, data, extra in cases:
            headers = {"Content-Type": "application/json", **extra}
            if "Transfer-Encoding" in headers:
                del headers["Transfer-Encoding"]

                async def chunks(payload: bytes = data) -> Any:
                    for i in range(0, len(payload), 65536):
                        yield payload[i : i + 65536]

                async with http.post(
                    f"{url}/api/v1/metrics", data=chunks(), headers={"X-API-Key": key, **headers}
                ) as response:
                    status, problem = response.status, await response.json()
            else:
                status, problem, _ = await post(http, url, key, data=data, headers=headers)
            assert status == expected, (name, problem)
            assert problem["status"] == expected, name
            assert problem["detail"], name
        assert await stored(admin, server.server_id) == []
        status, answer, _ = await post(
            http,
            url,
            key,
            data=gzipped(good),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert (status, answer) == (202, {"accepted": 1})
        raw_deflate = zlib.compress(json.dumps(good).encode())
        status, _, _ = await post(
            http,
            url,
            key,
            data=raw_deflate,
            headers={"Content-Type": "application/json", "Content-Encoding": "deflate"},
        )
        assert status == 415
    assert [r[0] for r in await stored(admin, server.server_id)] == ["cpu.percent"]


async def test_concurrent_agents_all_land(env: Environment, admin: Admin) -> None:
    clock = stack_clock()
    servers = [await new_server(admin, name=f"web-{i}") for i in range(8)]
    now = _now(clock)
    async with running_stack(env, clock=clock, gateways=2) as stack, client_session(env) as http:

        async def agent(index: int) -> list[int]:
            server = servers[index]
            url = stack.gateways[index % 2].url
            statuses = []
            for step in range(10):
                metrics = {f"m{j}": float(index * 1000 + step * 20 + j) for j in range(20)}
                status, _, _ = await post(
                    http, url, server.api_key, body((now - 100 + step, metrics))
                )
                statuses.append(status)
            return statuses

        results = await asyncio.gather(*(agent(i) for i in range(len(servers))))
    assert all(s == 202 for statuses in results for s in statuses)
    for index, server in enumerate(servers):
        rows = await stored(admin, server.server_id)
        assert len(rows) == 200
        assert sorted(v for _, _, v in rows) == [
            float(index * 1000 + step * 20 + j) for step in range(10) for j in range(20)
        ]


async def test_a_full_queue_answers_503_and_stores_nothing_of_the_refused(
    env: Environment, admin: Admin
) -> None:
    clock = stack_clock()
    first, second, third = [await new_server(admin, name=f"s{i}") for i in range(3)]
    now = _now(clock)
    overrides = {"INGEST_MAX_QUEUED_VALUES": "1", "INGEST_WRITERS": "1"}
    async with (
        running_stack(env, clock=clock, gateways=3, ingest_overrides=overrides) as stack,
        client_session(env) as http,
    ):
        # One gateway per post, so each reaches the ingest service in its own call.
        url = stack.gateway.url
        async with commits_blocked(admin):
            blocked = asyncio.create_task(post(http, url, first.api_key, body((now, {"a": 1}))))
            await wait_for_blocked_commit(admin)
            racing = [
                asyncio.create_task(post(http, gateway.url, s.api_key, body((now, {"a": 2}))))
                for s, gateway in zip((second, third), stack.gateways[1:], strict=True)
            ]
            done, _ = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
            status, problem, headers = next(iter(done)).result()
            assert status == 503, problem
            assert headers["Retry-After"] == "1"
            assert problem["type"].endswith("/ingest-busy")
            assert "keep up" in problem["detail"]
        assert (await blocked)[:2] == (202, {"accepted": 1})
        statuses = sorted([(await task)[0] for task in racing])
    assert statuses == [202, 503]
    counts = [len(await stored(admin, s.server_id)) for s in (second, third)]
    assert sorted(counts) == [0, 1]


@pytest.mark.parametrize("grace", [10.0, 0.0])
async def test_shutdown_commits_what_was_accepted(
    env: Environment, admin: Admin, grace: float
) -> None:
    """SIGTERM path (GrpcService.stop): with a grace period the waiting post is answered 202;
    with none the RPC is cut off, but the accepted samples are still committed."""
    clock = stack_clock()
    server = await new_server(admin)
    async with running_stack(env, clock=clock) as stack, client_session(env) as http:
        async with commits_blocked(admin):
            posting = asyncio.create_task(
                post(http, stack.gateway.url, server.api_key, body((_now(clock), {"a": 1})))
            )
            await wait_for_blocked_commit(admin)
            stopping = asyncio.create_task(stack.ingest.stop(grace))
            if grace == 0:
                status, _, _ = await posting
                assert status == 503
            await asyncio.sleep(0)
        await stopping
        status, _, _ = await posting
        assert status == (202 if grace else 503)
    assert [r[2] for r in await stored(admin, server.server_id)] == [1.0]
