"""The key service factory."""

from __future__ import annotations

import contextlib
import os
import socket

import grpc
from opentelemetry.sdk.trace import TracerProvider

from key_service.domain import KeyManager
from key_service.events import RedisInvalidationPublisher
from key_service.repository import SCHEMA, PostgresKeyRepository
from key_service.servicer import KeyServicer
from key_service.settings import Settings
from scout.keys.v1 import keys_pb2, keys_pb2_grpc
from scout_kit.clock import Clock, SystemClock
from scout_kit.db import open_database, open_read_pools
from scout_kit.grpc_server import GrpcService, build_grpc_service
from scout_kit.identity import TokenVerifier
from scout_kit.redis import Keyspace, create_redis

SERVICE_NAME = keys_pb2.DESCRIPTOR.services_by_name["KeyService"].full_name


async def create_server(
    settings: Settings,
    address: str | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    """Open the pool and Redis client, migrate, and build the (not yet started) gRPC server."""
    clock = clock or SystemClock()
    resources = contextlib.AsyncExitStack()
    try:
        pool = await open_database(
            resources,
            settings.database_url.reveal(),
            pool_size=settings.db_pool_size,
            schema=SCHEMA,
            migrations="key_service.migrations",
        )
        redis_client = create_redis(settings.redis)
        resources.push_async_callback(redis_client.aclose)
        instance = f"key-service-{socket.gethostname()}-{os.getpid()}-{id(resources):x}"
        keyspace = Keyspace(settings.redis_prefix)
        publisher = RedisInvalidationPublisher(redis_client, keyspace, instance)
        reads = await open_read_pools(
            resources, pool, settings.replicas, pool_size=settings.db_pool_size
        )
        manager = KeyManager(PostgresKeyRepository(pool, reads), publisher, clock)
        verifier = TokenVerifier(settings.jwt_public_key.reveal(), clock)

        def register(server: grpc.aio.Server) -> list[str]:
            keys_pb2_grpc.add_KeyServiceServicer_to_server(KeyServicer(manager), server)
            return [SERVICE_NAME]

        service = await build_grpc_service(
            name="key_service",
            common=settings.common,
            listen_addr=address,
            verifier=verifier,
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
