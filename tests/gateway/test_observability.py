"""A gateway replica exposes Prometheus metrics on its internal METRICS_ADDR."""

from __future__ import annotations

import logging
import socket

import aiohttp
import pytest

from gateway.observability import LogBudget
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
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


def test_the_log_budget_admits_so_many_lines_a_second_and_counts_the_rest() -> None:
    clock = ManualClock()
    budget = LogBudget(clock, 3)
    assert [budget.admit() for _ in range(5)] == [0, 0, 0, None, None]
    clock.advance(0.99)
    assert budget.admit() is None
    clock.advance(0.01)
    # A new second: the first line says how many were left out before it.
    assert [budget.admit() for _ in range(4)] == [3, 0, 0, None]
    clock.advance(10)
    assert budget.admit() == 1


async def test_client_errors_are_logged_within_their_budget_and_say_what_was_left_out(
    env: Environment, caplog: pytest.LogCaptureFixture
) -> None:
    """A flood of refused requests (an agent fleet on a regenerated key, guesses) does not flood
    the access log: with ACCESS_LOG=errors, at most ACCESS_LOG_CLIENT_ERRORS_PER_SECOND lines a
    second, and the next line counts the ones left out."""
    clock = ManualClock()
    overrides = {"ACCESS_LOG_CLIENT_ERRORS_PER_SECOND": "3"}
    async with (
        running_stack(env, gateways=1, clock=clock, gateway_overrides=overrides) as stack,
        client_session(env) as http,
    ):
        caplog.set_level(logging.INFO, logger="gateway.access")
        for _ in range(10):
            assert await whoami_status(http, stack.gateway.url, "not-a-key") == 401
        clock.advance(1)
        assert await whoami_status(http, stack.gateway.url, "not-a-key") == 401
    lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert [r.__dict__.get("http_status") for r in lines] == [401] * 4
    assert [r.__dict__.get("client_errors_left_out") for r in lines] == [None, None, None, 7]
