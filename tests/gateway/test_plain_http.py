"""Plain HTTP is refused before any credential is looked at; pages may be redirected."""

from __future__ import annotations

from aiohttp.test_utils import TestClient, TestServer

from gateway.app import create_plain_http_app
from gateway.settings import Settings
from tests.stack import Environment


def _settings(env: Environment) -> Settings:
    return Settings.from_env(
        env.gateway_env(
            {
                "KEY_SERVICE_ADDR": "127.0.0.1:1",
                "AUTH_SERVICE_ADDR": "127.0.0.1:1",
                "INGEST_SERVICE_ADDR": "127.0.0.1:1",
            },
            PUBLIC_URL="https://scout.example",
        )
    )


async def test_api_over_plain_http_is_refused_with_a_problem(env: Environment) -> None:
    # The backends point nowhere: a refusal that looked at the key would fail differently.
    async with TestClient(TestServer(create_plain_http_app(_settings(env)))) as client:
        response = await client.post(
            "/api/v1/metrics",
            headers={"X-API-Key": "a" * 64},
            cookies={"__Host-scout_session": "x"},
            json={"samples": []},
        )
        assert response.status == 403
        assert response.content_type == "application/problem+json"
        problem = await response.json()
        assert problem["type"].endswith("/https-required")
        assert "https://scout.example" in problem["detail"]
        assert "Set-Cookie" not in response.headers


async def test_browser_page_get_is_redirected_to_https(env: Environment) -> None:
    async with TestClient(TestServer(create_plain_http_app(_settings(env)))) as client:
        response = await client.get(
            "/dashboard?x=1", headers={"Accept": "text/html"}, allow_redirects=False
        )
        assert response.status == 308
        assert response.headers["Location"] == "https://scout.example/dashboard?x=1"
        api = await client.get(
            "/api/v1/servers", headers={"Accept": "text/html"}, allow_redirects=False
        )
        assert api.status == 403
