"""The ingest service factory."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import grpc
from opentelemetry.sdk.trace import TracerProvider

from ingest_service.committer import GroupCommitter
from ingest_service.compaction import Compaction
from ingest_service.copier import SampleCopier
from ingest_service.maintenance import Maintenance, partitioned_tables
from ingest_service.metrics import CommitterMetrics, CommitterQueueCollector
from ingest_service.partitions import Partitions
from ingest_service.repository import SCHEMA, SampleRepository
from ingest_service.rollup import RollupJob
from ingest_service.servicer import IngestServicer
from ingest_service.settings import Settings
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_kit.clock import Clock
from scout_kit.grpc_server import GrpcService
from scout_kit.service import Built, Opened, create_service
from scout_kit.tasks import start_background

SERVICE_NAME = ingest_pb2.DESCRIPTOR.services_by_name["IngestService"].full_name


def build_maintenance(
    settings: Settings, repository: SampleRepository, clock: Clock
) -> Maintenance:
    late = timedelta(hours=settings.late_sample_hours)
    tables = partitioned_tables(
        timedelta(days=settings.retention_days),
        timedelta(days=settings.rollup_1m_retention_days),
        timedelta(days=settings.rollup_1h_retention_days),
        late,
    )
    partitions = Partitions(
        repository.pool,
        repository.schema,
        tables,
        statement_timeout=settings.maintenance_statement_timeout_seconds,
    )
    return Maintenance(
        partitions,
        RollupJob(partitions, repository.schema),
        SampleCopier(repository, partitions),
        Compaction(partitions, settings.compaction_statement_timeout_seconds, late),
        clock,
    )


def _start_maintenance(
    resources: contextlib.AsyncExitStack, settings: Settings, maintenance: Maintenance
) -> None:
    """The background passes, cancelled with the service's resources (after the committer has
    committed what it accepted, which was pushed later)."""
    interval = settings.retention_interval_seconds
    start_background(resources, "ingest-partitions", maintenance.run_partitions(interval))
    start_background(
        resources, "ingest-rollup", maintenance.run_rollups(settings.rollup_interval_seconds)
    )
    # Every partition interval, from one interval after start (index rebuilds of closed days).
    start_background(resources, "ingest-compaction", maintenance.run_compaction(interval))
    start_background(resources, "ingest-move-old-samples", maintenance.run_copier())


async def create_server(
    settings: Settings,
    address: str | None = None,
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    async def build(opened: Opened) -> Built:
        repository = SampleRepository(opened.pool, reads=opened.reads)
        maintenance = build_maintenance(settings, repository, opened.clock)
        await maintenance.prepare()
        _start_maintenance(opened.resources, settings, maintenance)
        committer = GroupCommitter(
            repository,
            opened.clock,
            max_queued_values=settings.max_queued_values,
            max_batch_values=settings.max_batch_values,
            writers=settings.writers,
            observer=CommitterMetrics(opened.registry),
            make_room=maintenance.cover,
        )
        # Closed in reverse order after server.stop(grace): the committer commits everything
        # it accepted while the pool is still open.
        opened.resources.push_async_callback(committer.close)
        servicer = IngestServicer(
            repository,
            committer,
            opened.clock,
            timedelta(days=settings.retention_days),
            timedelta(hours=settings.late_sample_hours),
            lambda: maintenance.partitions.packed_through("samples_raw"),
            minute_retention=timedelta(days=settings.rollup_1m_retention_days),
        )

        def register(server: grpc.aio.Server) -> list[str]:
            ingest_pb2_grpc.add_IngestServiceServicer_to_server(servicer, server)
            return [SERVICE_NAME]

        return Built(register, [CommitterQueueCollector(committer, settings.max_queued_values)])

    return await create_service(
        "ingest_service",
        settings,
        schema=SCHEMA,
        migrations="ingest_service.migrations",
        build=build,
        address=address,
        clock=clock,
        tracer_provider=tracer_provider,
    )
