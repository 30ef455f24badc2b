"""A gateway replica exposes Prometheus metrics on its internal METRICS_ADDR."""

from __future__ import annotations

import socket

import aiohttp

from scout_admin.commands import Admin
from tests.gateway.keys_support import new_server, whoami_status
from tests.stack import Environment, client_session, running_stack


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_requests_and_key_cache_are_measured(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    port = _free_port()
    overrides = {"METRICS_ADDR": f"127.0.0.1:{port}"}
    async with (
        running_stack(env, gateway_overrides=overrides) as stack,
        client_session(env) as http,
    ):
        for _ in range(3):
            assert await whoami_status(http, stack.gateway.url, server.api_key) == 200
        assert await whoami_status(http, stack.gateway.url, "0" * 64) == 401
        async with http.get(f"{stack.gateway.url}/no/such/page") as response:
            assert response.status == 404
        async with (
            aiohttp.ClientSession() as plain,
            plain.get(f"http://127.0.0.1:{port}/metrics") as scrape,
        ):
            text = await scrape.text()
    lines = set(text.splitlines())
    expected = {
        'scout_gateway_requests_total{method="GET",route="/api/v1/whoami",status="200"} 3.0',
        'scout_gateway_requests_total{method="GET",route="/api/v1/whoami",status="401"} 1.0',
        'scout_gateway_requests_total{method="GET",route="unmatched",status="404"} 1.0',
        "scout_gateway_key_cache_entries 1.0",
        "scout_gateway_key_cache_trusted 1.0",
    }
    assert expected <= lines, sorted(lines)
    assert any(line.startswith("scout_gateway_request_seconds_bucket") for line in lines)
    renewals = [r for r in lines if r.startswith("scout_gateway_cache_lease_renewals_total")]
    assert renewals and float(renewals[0].split()[-1]) >= 1
