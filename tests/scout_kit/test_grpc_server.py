"""Every service: health without credentials, identity required, request id carried, clean stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from key_service.errors import ServerNotFound
from key_service.server import create_server
from key_service.settings import Settings
from scout.keys.v1 import keys_pb2, keys_pb2_grpc
from scout_kit.clock import ManualClock, SystemClock
from scout_kit.grpc_server import GrpcService
from scout_kit.identity import (
    AuthMethod,
    Identity,
    PrincipalKind,
    TokenIssuer,
    generate_keypair,
    service_identity,
)
from scout_kit.logging import RequestIdFilter
from tests.stack import Environment

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def key_service(env: Environment) -> AsyncIterator[GrpcService]:
    service = await create_server(Settings.from_env(env.service_env()))
    await service.start()
    yield service
    await service.stop(0.5)


async def test_health_is_served_without_credentials(
    env: Environment, key_service: GrpcService
) -> None:
    async with env.service_channel(key_service.port) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "scout.keys.v1.KeyService"):
            answer = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def _validate(
    env: Environment, port: int, metadata: tuple[tuple[str, str], ...]
) -> grpc.StatusCode:
    async with env.service_channel(port) as channel:
        stub = keys_pb2_grpc.KeyServiceStub(channel)
        try:
            await stub.ValidateKey(
                keys_pb2.ValidateKeyRequest(key_sha256=b"\0" * 32), metadata=metadata
            )
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK


async def test_calls_without_a_valid_identity_token_are_unauthenticated(
    env: Environment, key_service: GrpcService
) -> None:
    gateway = service_identity("gateway")
    forged = TokenIssuer(generate_keypair()[0], SystemClock()).token_for(gateway)
    an_hour_ago = ManualClock(datetime.now(UTC) - timedelta(hours=1))
    expired = TokenIssuer(env.jwt_private_pem, an_hour_ago).token_for(gateway)
    valid = TokenIssuer(env.jwt_private_pem, SystemClock()).token_for(gateway)
    port = key_service.port
    assert await _validate(env, port, ()) == grpc.StatusCode.UNAUTHENTICATED
    for token in ("nonsense", forged, expired):
        metadata = (("authorization", f"Bearer {token}"),)
        assert await _validate(env, port, metadata) == grpc.StatusCode.UNAUTHENTICATED
    assert await _validate(env, port, (("authorization", f"Bearer {valid}"),)) == grpc.StatusCode.OK


async def test_services_authorize_from_claims(env: Environment, key_service: GrpcService) -> None:
    server = Identity(
        PrincipalKind.SERVER, "s", "00000000-0000-0000-0000-000000000001", AuthMethod.API_KEY
    )
    token = TokenIssuer(env.jwt_private_pem, SystemClock()).token_for(server)
    # ValidateKey is for the gateway only, not for a server's own key.
    assert await _validate(env, key_service.port, (("authorization", f"Bearer {token}"),)) == (
        grpc.StatusCode.PERMISSION_DENIED
    )


async def test_request_id_travels_through_metadata(
    env: Environment, key_service: GrpcService, caplog: pytest.LogCaptureFixture
) -> None:
    token = TokenIssuer(env.jwt_private_pem, SystemClock()).token_for(service_identity("gateway"))
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.DEBUG, logger="scout_kit.grpc_server")
    async with env.service_channel(key_service.port) as channel:
        call = keys_pb2_grpc.KeyServiceStub(channel).ValidateKey(
            keys_pb2.ValidateKeyRequest(key_sha256=b"\1" * 32),
            metadata=(("authorization", f"Bearer {token}"), ("x-request-id", "req-42")),
        )
        await call
        # Echoed with the status (no separate initial-metadata frame).
        assert ("x-request-id", "req-42") in tuple(await call.trailing_metadata())
    handled = [r for r in caplog.records if getattr(r, "rpc", None) == "ValidateKey"]
    assert handled and all(getattr(r, "request_id", None) == "req-42" for r in handled)


async def test_a_refused_call_echoes_its_request_id_too(
    env: Environment, key_service: GrpcService
) -> None:
    async with env.service_channel(key_service.port) as channel:
        stub = keys_pb2_grpc.KeyServiceStub(channel)
        for _ in range(2):  # the second call goes through the handler built for the first
            call = stub.ValidateKey(
                keys_pb2.ValidateKeyRequest(key_sha256=b"\1" * 32),
                metadata=(("x-request-id", "req-43"),),
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await call
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert ("x-request-id", "req-43") in tuple(await call.trailing_metadata())


async def test_sigterm_drains_and_exits_cleanly(env: Environment) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "key_service",
        env={**os.environ, **env.service_env(LISTEN_ADDR="127.0.0.1:0", LOG_FORMAT="json")},
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[bytes] = []
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 30)
        assert line, b"".join(lines).decode()
        lines.append(line)
        if b"serving gRPC" in line:
            break
    assert line.startswith(b"{"), "logs are JSON when stderr is not a terminal"
    proc.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(proc.stderr.read(), 30)
    assert await proc.wait() == 0
    assert b"stopped" in rest


async def test_bad_settings_exit_with_the_variable_named(env: Environment) -> None:
    values = env.service_env()
    del values["DATABASE_URL"]
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "key_service",
        env={"PATH": os.environ["PATH"], **values},
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == 1
    assert b"DATABASE_URL is required" in err


async def test_domain_errors_answer_the_code_and_public_message_their_class_names(
    env: Environment, key_service: GrpcService
) -> None:
    user = Identity(
        PrincipalKind.USER,
        "00000000-0000-0000-0000-0000000000aa",
        "00000000-0000-0000-0000-0000000000bb",
        AuthMethod.SESSION,
        session_id="0123456789abcdef0123456789abcdef",
    )
    token = TokenIssuer(env.jwt_private_pem, SystemClock()).token_for(user)
    metadata = (("authorization", f"Bearer {token}"),)
    async with env.service_channel(key_service.port) as channel:
        stub = keys_pb2_grpc.KeyServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetServer(
                keys_pb2.GetServerRequest(server_id="00000000-0000-0000-0000-0000000000cc"),
                metadata=metadata,
            )
        with pytest.raises(grpc.aio.AioRpcError) as invalid:
            await stub.CreateServer(keys_pb2.CreateServerRequest(name=""), metadata=metadata)
    assert (missing.value.code(), missing.value.details()) == (
        grpc.StatusCode.NOT_FOUND,
        ServerNotFound.public_message,
    )
    assert (invalid.value.code(), invalid.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "name must not be empty",
    )
