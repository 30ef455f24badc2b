"""A burst of parallel guesses for one account, spread over two auth replicas, is counted before
any password is verified: at most the limit are verified, for sign-in and password change."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from auth_service.server import create_server
from auth_service.settings import Settings
from auth_service.throttle import ThrottlePolicy
from scout.auth.v1 import auth_pb2, auth_pb2_grpc
from scout_admin.commands import Admin
from scout_kit.clock import SystemClock
from scout_kit.grpc_client import call_metadata
from scout_kit.grpc_server import GrpcService
from scout_kit.identity import AuthMethod, Identity, PrincipalKind, TokenIssuer, service_identity
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.stack import Environment

LIMIT = ThrottlePolicy().account_address.failures
BURST = 15


@pytest.fixture
async def replicas(env: Environment) -> AsyncIterator[list[GrpcService]]:
    services = [await create_server(Settings.from_env(env.service_env("auth"))) for _ in "ab"]
    for service in services:
        await service.start()
    yield services
    for service in services:
        await service.stop(0.5)


async def test_parallel_wrong_passwords_verify_at_most_the_limit(
    env: Environment, admin: Admin, replicas: list[GrpcService]
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    issuer = TokenIssuer(env.jwt_private_pem, SystemClock())
    metadata = call_metadata(issuer.token_for(service_identity("gateway")))
    channels = [env.service_channel(service.port) for service in replicas]
    try:
        stubs = [auth_pb2_grpc.AuthServiceStub(channel) for channel in channels]
        answers = await asyncio.gather(
            *(
                stubs[n % 2].Login(
                    auth_pb2.LoginRequest(
                        email=email, password=f"guess {n}", client_address="203.0.113.7"
                    ),
                    metadata=metadata,
                )
                for n in range(BURST)
            )
        )
        outcomes = Counter(answer.status for answer in answers)
        assert outcomes == {
            auth_pb2.LOGIN_STATUS_INVALID_CREDENTIALS: LIMIT,
            auth_pb2.LOGIN_STATUS_THROTTLED: BURST - LIMIT,
        }
        # Even the right password now waits: the guesses were counted.
        right = await stubs[0].Login(
            auth_pb2.LoginRequest(
                email=email, password=STRONG_PASSWORD, client_address="203.0.113.7"
            ),
            metadata=metadata,
        )
        assert right.status == auth_pb2.LOGIN_STATUS_THROTTLED
    finally:
        for channel in channels:
            await channel.close()


async def test_parallel_wrong_current_passwords_verify_at_most_the_limit(
    env: Environment, admin: Admin, replicas: list[GrpcService]
) -> None:
    user = await admin.create_user(unique_email(), STRONG_PASSWORD, None)
    issuer = TokenIssuer(env.jwt_private_pem, SystemClock())
    identity = Identity(
        PrincipalKind.USER,
        user.id,
        user.account_id,
        AuthMethod.SESSION,
        session_id="0123456789abcdef0123456789abcdef",
    )
    metadata = call_metadata(issuer.token_for(identity))
    channels = [env.service_channel(service.port) for service in replicas]
    try:
        stubs = [auth_pb2_grpc.AuthServiceStub(channel) for channel in channels]

        async def change(n: int) -> int:
            answer: auth_pb2.ChangePasswordResponse = await stubs[n % 2].ChangePassword(
                auth_pb2.ChangePasswordRequest(
                    current_password=f"guess {n}",
                    new_password="another long passphrase 9",
                    client_address="203.0.113.8",
                ),
                metadata=metadata,
            )
            return int(answer.status)

        outcomes = Counter(await asyncio.gather(*(change(n) for n in range(BURST))))
        assert outcomes == {
            auth_pb2.CHANGE_PASSWORD_STATUS_WRONG_PASSWORD: LIMIT,
            auth_pb2.CHANGE_PASSWORD_STATUS_THROTTLED: BURST - LIMIT,
        }
    finally:
        for channel in channels:
            await channel.close()
