"""Who may call what on the AuthService, over a real gRPC channel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from auth_service.server import create_server
from auth_service.settings import Settings
from scout.auth.v1 import auth_pb2, auth_pb2_grpc
from scout_kit.clock import SystemClock
from scout_kit.grpc_client import call_metadata
from scout_kit.grpc_server import GrpcService
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer, service_identity
from scout_kit.settings import SettingsError
from tests.stack import Environment

USER = Identity(
    PrincipalKind.USER,
    "6f1c1a52-4c1e-4d55-9d0c-2a8f5e0f9b11",
    "0a7c4e16-8d63-4a3c-b0e1-5d7b1f2c3a44",
    AuthMethod.SESSION,
    session_id="0123456789abcdef0123456789abcdef",
)
SERVER = Identity(
    PrincipalKind.SERVER,
    "5b8d9c2e-1f3a-4b6c-8d7e-9f0a1b2c3d4e",
    "0a7c4e16-8d63-4a3c-b0e1-5d7b1f2c3a44",
    AuthMethod.API_KEY,
)


@pytest.fixture
async def auth_service(env: Environment) -> AsyncIterator[GrpcService]:
    service = await create_server(Settings.from_env(env.service_env()))
    await service.start()
    yield service
    await service.stop(0.5)


async def test_gateway_only_and_user_only_methods(
    env: Environment, auth_service: GrpcService
) -> None:
    issuer = TokenIssuer(env.jwt_private_pem, SystemClock())

    def as_(identity: Identity) -> tuple[tuple[str, str], ...]:
        return call_metadata(issuer.token_for(identity))

    async with env.service_channel(auth_service.port) as channel:
        stub = auth_pb2_grpc.AuthServiceStub(channel)
        gateway_only = [
            (stub.Login, auth_pb2.LoginRequest(email="a@example.com", password="x")),
            (stub.ValidateSession, auth_pb2.ValidateSessionRequest(session_token="x")),
            (stub.Logout, auth_pb2.LogoutRequest(session_token="x")),
        ]
        for method, request in gateway_only:
            for identity in (USER, SERVER, service_identity("ingest")):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await method(request, metadata=as_(identity))
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        session_only = [
            (stub.ListSessions, auth_pb2.ListSessionsRequest()),
            (stub.RevokeOtherSessions, auth_pb2.RevokeOtherSessionsRequest()),
            (stub.ListActivity, auth_pb2.ListActivityRequest()),
        ]
        for method, request in session_only:
            for identity in (SERVER, service_identity("gateway")):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await method(request, metadata=as_(identity))
                assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # The gateway's answers are data, not errors.
        answer = await stub.ValidateSession(
            auth_pb2.ValidateSessionRequest(session_token="x" * 43),
            metadata=as_(service_identity("gateway")),
        )
        assert answer.status == auth_pb2.SESSION_STATUS_NOT_FOUND
        with pytest.raises(grpc.aio.AioRpcError) as bad_page:
            await stub.ListActivity(
                auth_pb2.ListActivityRequest(page_token="not-a-token"), metadata=as_(USER)
            )
        assert bad_page.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await stub.RevokeSession(
                auth_pb2.RevokeSessionRequest(session_id="nope"), metadata=as_(USER)
            )
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_throttle_limits_are_configurable_within_asvs(env: Environment) -> None:
    settings = Settings.from_env(env.service_env(LOGIN_FAILURES_PER_ACCOUNT_ADDRESS="3"))
    assert settings.throttle.account_address.failures == 3
    with pytest.raises(SettingsError, match="LOGIN_FAILURES_PER_ACCOUNT"):
        Settings.from_env(env.service_env(LOGIN_FAILURES_PER_ACCOUNT="500"))
