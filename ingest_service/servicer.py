"""The IngestService gRPC edge: authorization from the caller's identity, validation, mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import grpc

from ingest_service.committer import GroupCommitter, QueueFull, ShuttingDown
from ingest_service.query_plan import plan_query
from ingest_service.repository import SampleRepository
from ingest_service.samples import InvalidWrite, Write, canonical_uuid, micros, write_from_columns
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_kit.clock import Clock
from scout_kit.grpc_server import current_identity, require_service
from scout_kit.identity import PrincipalKind
from scout_kit.sample_rules import (
    MAX_NAMES_PER_QUERY,
    MAX_POINTS_PER_QUERY,
    MAX_POINTS_PER_SERIES,
    METRIC_NAME,
)
from scout_kit.timestamps import timestamp_fault, to_timestamp

Context = grpc.aio.ServicerContext[Any, Any]

QUEUE_FULL_MESSAGE = "ingest is at capacity; retry shortly"
ACCOUNT_REQUIRED = "an account principal is required"


async def _invalid(context: Context, message: str) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, message)
    raise AssertionError("abort returned")  # pragma: no cover


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(
        self,
        repository: SampleRepository,
        committer: GroupCommitter,
        clock: Clock,
        retention: timedelta,
    ) -> None:
        self._repo = repository
        self._committer = committer
        self._clock = clock
        self._retention = retention

    async def _commit(self, writes: list[Write], context: Context) -> None:
        try:
            await self._committer.submit(writes)
        except QueueFull:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, QUEUE_FULL_MESSAGE)
        except ShuttingDown:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "ingest is shutting down")

    async def WriteBatch(
        self, request: ingest_pb2.WriteBatchRequest, context: Context
    ) -> ingest_pb2.WriteBatchResponse:
        await require_service(context, "gateway")
        now = self._clock.now()
        results: list[ingest_pb2.EntryResult] = []
        writes: list[Write] = []
        for entry in request.entries:
            try:
                write = write_from_columns(entry, now, self._retention)
            except InvalidWrite as exc:
                results.append(ingest_pb2.EntryResult(error=str(exc)))
                continue
            writes.append(write)
            results.append(ingest_pb2.EntryResult(accepted=len(write)))
        if writes:
            await self._commit(writes, context)
        return ingest_pb2.WriteBatchResponse(results=results)

    async def _readable(self, server_id: str, context: Context) -> tuple[str, str]:
        """(server id, account id) the caller may read; NOT_FOUND for anything else, so an
        invisible server and a missing one look the same."""
        identity = current_identity()
        canonical = canonical_uuid(server_id)
        if identity.kind is PrincipalKind.SERVICE or identity.account_id is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, ACCOUNT_REQUIRED)
        if canonical is None or (
            identity.kind is PrincipalKind.SERVER and identity.subject != canonical
        ):
            await context.abort(grpc.StatusCode.NOT_FOUND, "server not found")
        assert canonical is not None
        assert identity.account_id is not None
        return canonical, identity.account_id

    async def QueryMetrics(
        self, request: ingest_pb2.QueryMetricsRequest, context: Context
    ) -> ingest_pb2.QueryMetricsResponse:
        server_id, account_id = await self._readable(request.server_id, context)
        step = request.step_seconds
        for name in ("from", "to"):
            fault = timestamp_fault(getattr(request, name))
            if fault is not None:
                await _invalid(context, f"{name} {fault}")
        start = getattr(request, "from").ToDatetime(tzinfo=UTC)
        end = request.to.ToDatetime(tzinfo=UTC)
        if step < 1:
            await _invalid(context, "step must be at least 1 second")
        if end <= start:
            await _invalid(context, "from must be before to")
        buckets = bucket_count(start, end, step)
        if buckets > MAX_POINTS_PER_SERIES:
            await _invalid(
                context,
                f"the query asks for {buckets} points per series; at most "
                f"{MAX_POINTS_PER_SERIES}: use a larger step or a shorter range",
            )
        names = list(dict.fromkeys(request.names))
        for name in names:
            if not METRIC_NAME.fullmatch(name):
                await _invalid(context, f"metric name {name[:60]!r} is not valid")
        if not names:
            names = await self._repo.metric_names(server_id, account_id)
        if len(names) > MAX_NAMES_PER_QUERY:
            await _invalid(
                context,
                f"the query covers {len(names)} metrics; at most {MAX_NAMES_PER_QUERY}: "
                "choose them with names",
            )
        if len(names) * buckets > MAX_POINTS_PER_QUERY:
            await _invalid(
                context,
                f"the query asks for {len(names) * buckets} points; at most "
                f"{MAX_POINTS_PER_QUERY}: use a larger step, a shorter range or fewer names",
            )
        series = {name: ingest_pb2.Series(name=name) for name in names}
        if names:
            lo, hi = micros(start), micros(end)
            rows = await self._repo.buckets(
                server_id,
                account_id,
                names,
                step,
                lambda stale: plan_query(lo, hi, step, stale),
                start,
                end,
            )
            for row in rows:
                series[row.name].points.append(
                    ingest_pb2.Point(
                        ts=to_timestamp(row.start),
                        avg=row.avg,
                        min=row.min,
                        max=row.max,
                        count=row.count,
                    )
                )
        return ingest_pb2.QueryMetricsResponse(series=list(series.values()), step_seconds=step)

    async def LatestMetrics(
        self, request: ingest_pb2.LatestMetricsRequest, context: Context
    ) -> ingest_pb2.LatestMetricsResponse:
        server_id, account_id = await self._readable(request.server_id, context)
        rows = await self._repo.latest(server_id, account_id)
        return ingest_pb2.LatestMetricsResponse(
            values=[
                ingest_pb2.LatestValue(name=name, value=value, ts=to_timestamp(ts))
                for name, value, ts in rows
            ]
        )

    async def ListMetricNames(
        self, request: ingest_pb2.ListMetricNamesRequest, context: Context
    ) -> ingest_pb2.ListMetricNamesResponse:
        server_id, account_id = await self._readable(request.server_id, context)
        return ingest_pb2.ListMetricNamesResponse(
            names=await self._repo.metric_names(server_id, account_id)
        )

    async def LastSeen(
        self, request: ingest_pb2.LastSeenRequest, context: Context
    ) -> ingest_pb2.LastSeenResponse:
        identity = current_identity()
        if identity.account_id is None:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, ACCOUNT_REQUIRED)
        assert identity.account_id is not None
        ids = [i for i in map(canonical_uuid, request.server_ids) if i is not None]
        if identity.kind is PrincipalKind.SERVER:
            ids = [i for i in ids if i == identity.subject]
        seen = await self._repo.last_seen(identity.account_id, ids)
        return ingest_pb2.LastSeenResponse(
            servers=[
                ingest_pb2.ServerLastSeen(server_id=server_id, last_seen_at=to_timestamp(at))
                for server_id, at in seen.items()
            ]
        )


def bucket_count(start: datetime, end: datetime, step_seconds: int) -> int:
    """Epoch-aligned buckets of `step_seconds` touched by [start, end)."""
    step = step_seconds * 1_000_000
    return (micros(end) - 1) // step - micros(start) // step + 1
