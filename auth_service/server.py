"""The auth service factory."""

from __future__ import annotations

import grpc
from opentelemetry.sdk.trace import TracerProvider

from auth_service.activity import ActivityLog
from auth_service.domain import Authentication
from auth_service.events import RedisSessionEndPublisher
from auth_service.passwords import Passwords
from auth_service.servicer import AuthServicer
from auth_service.sessions import SessionStore
from auth_service.settings import Settings
from auth_service.throttle import LoginThrottle
from auth_service.users import SCHEMA, UserDirectory
from scout.auth.v1 import auth_pb2, auth_pb2_grpc
from scout_kit.clock import Clock
from scout_kit.grpc_server import GrpcService
from scout_kit.redis import Keyspace, ReplicaWait
from scout_kit.service import Built, Opened, create_service

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


async def create_server(
    settings: Settings,
    address: str | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    async def build(opened: Opened) -> Built:
        assert opened.redis is not None
        redis, clock = opened.redis, opened.clock
        keyspace = Keyspace(settings.redis_prefix)
        passwords = Passwords()
        sessions = SessionStore(
            redis,
            keyspace,
            clock,
            idle_seconds=settings.session_idle_seconds,
            absolute_seconds=settings.session_absolute_seconds,
            replicas=ReplicaWait.of(settings.redis),
        )
        auth = Authentication(
            UserDirectory(opened.pool, passwords, clock),
            passwords,
            sessions,
            LoginThrottle(redis, keyspace, clock, settings.throttle),
            ActivityLog(opened.pool, clock, opened.reads),
            RedisSessionEndPublisher(redis, keyspace, opened.instance, clock),
        )
        servicer = AuthServicer(auth)

        def register(server: grpc.aio.Server) -> list[str]:
            auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        return Built(register)

    return await create_service(
        "auth_service",
        settings,
        schema=SCHEMA,
        migrations="auth_service.migrations",
        build=build,
        redis=settings.redis,
        address=address,
        clock=clock,
        tracer_provider=tracer_provider,
    )
