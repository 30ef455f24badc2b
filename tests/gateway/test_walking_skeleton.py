"""The walking skeleton: an agent's metric goes gateway -> key service -> ingest -> PostgreSQL."""

from __future__ import annotations

import time

import psycopg2

from scout_admin.commands import Admin
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.stack import Environment, client_session, running_stack


async def _server_with_key(admin: Admin) -> tuple[str, str]:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    created = await admin.create_server(email, "web-1")
    return created.server.id, created.api_key


def _rows(env: Environment, server_id: str) -> list[tuple[str, float]]:
    with psycopg2.connect(env.database_url) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT name, value FROM ingest.sample_values WHERE server_id = %s ORDER BY name",
            (server_id,),
        )
        rows = cur.fetchall()
    conn.close()
    return rows


async def test_metric_posted_with_key_lands_in_postgres(env: Environment, admin: Admin) -> None:
    server_id, api_key = await _server_with_key(admin)
    async with running_stack(env) as stack, client_session(env) as http:
        response = await http.post(
            f"{stack.gateway.url}/api/v1/metrics",
            headers={"X-API-Key": api_key, "X-Request-ID": "trace-me-123"},
            json={
                "samples": [
                    {"ts": time.time(), "metrics": {"cpu.percent": 12.5, "mem.used_bytes": 1.2e9}}
                ]
            },
        )
        assert response.status == 202, await response.text()
        assert response.headers["X-Request-ID"] == "trace-me-123"
        assert (
            int(response.headers["Strict-Transport-Security"].split("=")[1].split(";")[0])
            >= 31536000
        )
        assert await response.json() == {"accepted": 2}
    assert _rows(env, server_id) == [("cpu.percent", 12.5), ("mem.used_bytes", 1.2e9)]


async def test_missing_malformed_and_unknown_keys_are_refused(
    env: Environment, admin: Admin
) -> None:
    body = {"samples": [{"ts": time.time(), "metrics": {"cpu.percent": 1.0}}]}
    async with running_stack(env) as stack, client_session(env) as http:
        url = f"{stack.gateway.url}/api/v1/metrics"
        cases = {
            "none": {},
            "short": {"X-API-Key": "abc123"},
            "not-hex": {"X-API-Key": "z" * 64},
            "unknown": {"X-API-Key": "0" * 64},
        }
        for name, headers in cases.items():
            response = await http.post(url, headers=headers, json=body)
            assert response.status == 401, name
            assert response.content_type == "application/problem+json", name
            problem = await response.json()
            assert problem["status"] == 401 and problem["title"] == "Unauthorized", name
            assert "X-Request-ID" in response.headers
            assert "Strict-Transport-Security" in response.headers
