"""The IngestService gRPC edge: authorization from the caller's identity, validation, mapping."""

from __future__ import annotations

import math
import uuid
from datetime import UTC
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from ingest_service.repository import SampleRepository
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_kit.clock import Clock
from scout_kit.grpc_server import current_identity
from scout_kit.identity import PrincipalKind

Context = grpc.aio.ServicerContext[Any, Any]


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(self, repository: SampleRepository, clock: Clock) -> None:
        self._repo = repository
        self._clock = clock

    async def WriteSamples(
        self, request: ingest_pb2.WriteSamplesRequest, context: Context
    ) -> ingest_pb2.WriteSamplesResponse:
        identity = current_identity()
        if identity.kind is not PrincipalKind.SERVER or identity.subject != request.server_id:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "a server may write only its own metrics"
            )
        assert identity.account_id is not None
        rows = []
        for sample in request.samples:
            ts = sample.ts.ToDatetime(tzinfo=UTC)
            for metric in sample.metrics:
                if not math.isfinite(metric.value):
                    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "values must be finite")
                rows.append((metric.name, ts, metric.value))
        if not rows:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "no samples")
        inserted = await self._repo.write(
            request.server_id, identity.account_id, rows, self._clock.now()
        )
        return ingest_pb2.WriteSamplesResponse(accepted=inserted)

    async def LastSeen(
        self, request: ingest_pb2.LastSeenRequest, context: Context
    ) -> ingest_pb2.LastSeenResponse:
        identity = current_identity()
        if identity.account_id is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "an account principal is required")
        assert identity.account_id is not None
        ids = []
        for server_id in request.server_ids:
            try:
                ids.append(str(uuid.UUID(server_id)))
            except ValueError:
                continue  # cannot exist: simply absent from the answer
        if identity.kind is PrincipalKind.SERVER:
            ids = [i for i in ids if i == identity.subject]
        seen = await self._repo.last_seen(identity.account_id, ids)
        answer = []
        for server_id, at in seen.items():
            ts = Timestamp()
            ts.FromDatetime(at)
            answer.append(ingest_pb2.ServerLastSeen(server_id=server_id, last_seen_at=ts))
        return ingest_pb2.LastSeenResponse(servers=answer)
