"""The ingest service factory."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import grpc
from opentelemetry.sdk.trace import TracerProvider

from ingest_service.committer import GroupCommitter
from ingest_service.metrics import CommitterMetrics, CommitterQueueCollector
from ingest_service.repository import SCHEMA, SampleRepository
from ingest_service.retention import RetentionJob
from ingest_service.servicer import IngestServicer
from ingest_service.settings import Settings
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_kit.clock import Clock, SystemClock
from scout_kit.db import open_database
from scout_kit.grpc_server import GrpcService, build_grpc_service
from scout_kit.identity import TokenVerifier
from scout_kit.metrics import create_registry

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def create_server(
    settings: Settings,
    address: str | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    clock = clock or SystemClock()
    retention = timedelta(days=settings.retention_days)
    resources = contextlib.AsyncExitStack()
    try:
        pool = await open_database(
            resources,
            settings.database_url.reveal(),
            pool_size=settings.db_pool_size,
            schema=SCHEMA,
            migrations="ingest_service.migrations",
        )
        repository = SampleRepository(pool)
        registry = create_registry("ingest_service")
        committer = GroupCommitter(
            repository,
            clock,
            max_queued_values=settings.max_queued_values,
            max_batch_values=settings.max_batch_values,
            writers=settings.writers,
            observer=CommitterMetrics(registry),
        )
        # Closed in reverse order after server.stop(grace): the committer commits everything
        # it accepted while the pool is still open.
        resources.push_async_callback(committer.close)
        job = RetentionJob(repository, clock, retention, settings.retention_batch_size)
        retention_task = asyncio.create_task(
            job.run(settings.retention_interval_seconds), name="ingest-retention"
        )
        resources.push_async_callback(_cancel, retention_task)
        servicer = IngestServicer(repository, committer, clock, retention)

        def register(server: grpc.aio.Server) -> list[str]:
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        service = await build_grpc_service(
            name="ingest_service",
            common=settings.common,
            listen_addr=address,
            verifier=TokenVerifier(settings.jwt_public_key.reveal(), clock),
            register=register,
            resources=resources,
            tracer_provider=tracer_provider,
            registry=registry,
        )
        service.monitor(CommitterQueueCollector(committer, settings.max_queued_values))
        service.monitor_database(pool)
        return service
    except BaseException:
        await resources.aclose()
        raise
