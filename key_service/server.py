"""The key service factory."""

from __future__ import annotations

import grpc
from opentelemetry.sdk.trace import TracerProvider

from key_service.domain import KeyManager
from key_service.events import RedisInvalidationPublisher
from key_service.outbox import DeliveredRows, InvalidationRelay
from key_service.repository import SCHEMA, PostgresKeyRepository
from key_service.servicer import KeyServicer
from key_service.settings import Settings
from scout.keys.v1 import keys_pb2, keys_pb2_grpc
from scout_kit.clock import Clock
from scout_kit.grpc_server import GrpcService
from scout_kit.redis import Keyspace
from scout_kit.service import Built, Opened, create_service
from scout_kit.tasks import start_background

SERVICE_NAME = keys_pb2.DESCRIPTOR.services_by_name["KeyService"].full_name


async def create_server(
    settings: Settings,
    address: str | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    """Open the pool and Redis client, migrate, and build the (not yet started) gRPC server."""

    async def build(opened: Opened) -> Built:
        assert opened.redis is not None
        publisher = RedisInvalidationPublisher(
            opened.redis, Keyspace(settings.redis_prefix), opened.instance
        )
        repository = PostgresKeyRepository(opened.pool, opened.reads)
        delivered = DeliveredRows(repository)
        start_background(opened.resources, "outbox-deletes", delivered.run())
        # Runs before the task is stopped (last in, first out), once no call is in flight.
        opened.resources.push_async_callback(delivered.flush)
        servicer = KeyServicer(KeyManager(repository, publisher, opened.clock, delivered.delivered))
        relay = InvalidationRelay(repository, publisher, opened.clock, registry=opened.registry)
        start_background(opened.resources, "invalidation-relay", relay.run())

        def register(server: grpc.aio.Server) -> list[str]:
            keys_pb2_grpc.add_KeyServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        return Built(register)

    return await create_service(
        "key_service",
        settings,
        schema=SCHEMA,
        migrations="key_service.migrations",
        build=build,
        redis=settings.redis,
        address=address,
        clock=clock,
        tracer_provider=tracer_provider,
    )
