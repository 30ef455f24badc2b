"""The auth service factory."""

from __future__ import annotations

import contextlib
import os
import socket

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
from scout_kit.clock import Clock, SystemClock
from scout_kit.db import open_database, open_read_pools
from scout_kit.grpc_server import GrpcService, build_grpc_service
from scout_kit.identity import TokenVerifier
from scout_kit.redis import Keyspace, ReplicaWait, create_redis

SERVICE_NAME = auth_pb2.DESCRIPTOR.services_by_name["AuthService"].full_name


async def create_server(
    settings: Settings,
    address: str | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    clock = clock or SystemClock()
    resources = contextlib.AsyncExitStack()
    try:
        pool = await open_database(
            resources,
            settings.database_url.reveal(),
            pool_size=settings.db_pool_size,
            schema=SCHEMA,
            migrations="auth_service.migrations",
        )
        reads = await open_read_pools(
            resources, pool, settings.replicas, pool_size=settings.db_pool_size
        )
        redis_client = create_redis(settings.redis)
        resources.push_async_callback(redis_client.aclose)
        keyspace = Keyspace(settings.redis_prefix)
        passwords = Passwords()
        instance = f"auth-service-{socket.gethostname()}-{os.getpid()}-{id(resources):x}"
        sessions = SessionStore(
            redis_client,
            keyspace,
            clock,
            idle_seconds=settings.session_idle_seconds,
            absolute_seconds=settings.session_absolute_seconds,
            replicas=ReplicaWait.of(settings.redis),
        )
        auth = Authentication(
            UserDirectory(pool, passwords, clock),
            passwords,
            sessions,
            LoginThrottle(redis_client, keyspace, clock, settings.throttle),
            ActivityLog(pool, clock, reads),
            RedisSessionEndPublisher(redis_client, keyspace, instance, clock),
        )
        servicer = AuthServicer(auth)

        def register(server: grpc.aio.Server) -> list[str]:
            auth_pb2_grpc.add_AuthServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        service = await build_grpc_service(
            name="auth_service",
            common=settings.common,
            listen_addr=address,
            verifier=TokenVerifier(settings.jwt_public_key.reveal(), clock),
            register=register,
            resources=resources,
            tracer_provider=tracer_provider,
        )
        service.monitor_database(pool)
        service.monitor_redis(redis_client)
        return service
    except BaseException:
        await resources.aclose()
        raise
