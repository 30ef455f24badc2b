"""The auth service factory."""

from __future__ import annotations

import contextlib

import grpc

from auth_service.passwords import Passwords
from auth_service.servicer import AuthServicer
from auth_service.settings import Settings
from auth_service.users import SCHEMA, UserDirectory
from scout.auth.v1 import auth_pb2, auth_pb2_grpc
from scout_kit.clock import Clock, SystemClock
from scout_kit.db import close_pool, create_pool, migrate
from scout_kit.grpc_server import GrpcService, build_grpc_service
from scout_kit.identity import TokenVerifier
from scout_kit.redis import create_redis

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


async def create_server(
    settings: Settings, address: str | None = None, *, clock: Clock | None = None
) -> GrpcService:
    clock = clock or SystemClock()
    resources = contextlib.AsyncExitStack()
    try:
        pool = await create_pool(settings.database_url.reveal(), maxsize=settings.db_pool_size)
        resources.push_async_callback(close_pool, pool)
        await migrate(pool, SCHEMA, "auth_service.migrations")
        redis_client = create_redis(settings.redis_url.reveal())
        resources.push_async_callback(redis_client.aclose)
        users = UserDirectory(pool, Passwords(), clock)
        servicer = AuthServicer(users)

        def register(server: grpc.aio.Server) -> list[str]:
            auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        return await build_grpc_service(
            name="auth_service",
            listen_addr=address or settings.common.listen_addr,
            verifier=TokenVerifier(settings.jwt_public_key.reveal(), clock),
            register=register,
            resources=resources,
            metrics_addr=settings.common.metrics_addr,
        )
    except BaseException:
        await resources.aclose()
        raise
