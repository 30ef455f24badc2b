"""A service behind the gateway that is down makes it fail closed, and it recovers by itself."""

from __future__ import annotations

import asyncio

import grpc

from gateway.middlewares import _rpc_problem
from key_service.server import create_server as create_key_server
from key_service.settings import Settings as KeySettings
from scout_admin.commands import Admin
from tests.gateway.keys_support import new_server
from tests.stack import Environment, client_session, running_stack


async def test_key_service_outage_refuses_unchecked_keys_then_recovers(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack, client_session(env) as http:
        url = f"{stack.gateway.url}/api/v1/whoami"
        port = stack.keys.port
        await stack.keys.stop(0)
        async with http.get(url, headers={"X-API-Key": server.api_key}) as response:
            assert response.status == 503  # never accepted unchecked
            assert response.content_type == "application/problem+json"
            assert response.headers["Retry-After"] == "1"
            assert server.api_key not in await response.text()
        replacement = await create_key_server(
            KeySettings.from_env(env.service_env(LISTEN_ADDR=f"127.0.0.1:{port}"))
        )
        await replacement.start()
        try:
            status = 0
            async with asyncio.timeout(20):
                while status != 200:  # the channel reconnects with backoff
                    async with http.get(url, headers={"X-API-Key": server.api_key}) as response:
                        status = response.status
                        assert status in (200, 503)
                    await asyncio.sleep(0.1)
        finally:
            await replacement.stop(0.5)


def test_a_call_cancelled_by_a_stopping_service_is_a_retryable_503() -> None:
    exc = grpc.aio.AioRpcError(
        grpc.StatusCode.CANCELLED, grpc.aio.Metadata(), grpc.aio.Metadata(), "server stopping"
    )
    problem = _rpc_problem(exc)
    assert problem.status == 503
    assert problem.type == "service-unavailable"
    assert problem.headers["Retry-After"] == "1"
    assert "stopping" not in (problem.detail or "")  # internal detail stays in the log
