"""The IngestService gRPC edge: authorization from the caller's identity, validation, mapping.

Domain errors (ingest_service.errors) reach the caller through scout_kit's one server
interceptor, which answers each with the status code its class names."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import grpc
from google.protobuf.message import Message

from ingest_service.committer import GroupCommitter
from ingest_service.errors import InvalidQuery
from ingest_service.query_plan import Retention, plan_query, served_step
from ingest_service.repository import SampleRepository
from ingest_service.samples import (
    InvalidWrite,
    Write,
    accepted_window,
    canonical_uuid,
    micros,
    write_from_columns,
)
from scout.ingest.v1 import ingest_pb2, ingest_pb2_grpc
from scout_kit.clock import Clock
from scout_kit.errors import NotFound, PermissionDenied
from scout_kit.grpc_server import current_identity, require_service
from scout_kit.identity import PrincipalKind
from scout_kit.sample_rules import (
    MAX_NAMES_PER_QUERY,
    MAX_POINTS_PER_QUERY,
    MAX_POINTS_PER_SERIES,
    METRIC_NAME,
    bucket_count,
)
from scout_kit.timestamps import timestamp_fault, to_timestamp

Context = grpc.aio.ServicerContext[Message, Message]

ACCOUNT_REQUIRED = "an account principal is required"
_MICROSECOND = timedelta(microseconds=1)


class IngestServicer(ingest_pb2_grpc.IngestServiceServicer):
    def __init__(
        self,
        repository: SampleRepository,
        committer: GroupCommitter,
        clock: Clock,
        retention: timedelta,
        late: timedelta,
        packed_through: Callable[[], datetime | None] = lambda: None,
        *,
        minute_retention: timedelta,
    ) -> None:
        self._repo = repository
        self._committer = committer
        self._clock = clock
        self._retention = retention
        self._late = late
        self._packed_through = packed_through
        self._kept = Retention(retention // _MICROSECOND, minute_retention // _MICROSECOND)

    async def WriteBatch(
        self, request: ingest_pb2.WriteBatchRequest, context: Context
    ) -> ingest_pb2.WriteBatchResponse:
        await require_service(context, "gateway")
        window = accepted_window(
            self._clock.now(), self._late, self._retention, self._packed_through()
        )
        results: list[ingest_pb2.EntryResult] = []
        writes: list[Write] = []
        for entry in request.entries:
            try:
                write = write_from_columns(entry, window)
            except InvalidWrite as exc:
                results.append(ingest_pb2.EntryResult(error=str(exc)))
                continue
            writes.append(write)
            results.append(ingest_pb2.EntryResult(accepted=len(write)))
        if writes:
            await self._committer.submit(writes)
        return ingest_pb2.WriteBatchResponse(results=results)

    def _readable(self, server_id: str) -> tuple[str, str]:
        """(server id, account id) the caller may read; NOT_FOUND for anything else, so an
        invisible server and a missing one look the same."""
        identity = current_identity()
        canonical = canonical_uuid(server_id)
        if identity.kind is PrincipalKind.SERVICE or identity.account_id is None:
            raise PermissionDenied(ACCOUNT_REQUIRED)
        if canonical is None or (
            identity.kind is PrincipalKind.SERVER and identity.subject != canonical
        ):
            raise NotFound("server not found")
        return canonical, identity.account_id

    async def QueryMetrics(
        self, request: ingest_pb2.QueryMetricsRequest, context: Context
    ) -> ingest_pb2.QueryMetricsResponse:
        server_id, account_id = self._readable(request.server_id)
        start, end, step, buckets = query_window(request)
        names = list(dict.fromkeys(request.names))
        for name in names:
            if not METRIC_NAME.fullmatch(name):
                raise InvalidQuery(f"metric name {name[:60]!r} is not valid")
        if not names:
            names = await self._repo.metric_names(server_id, account_id)
        check_query_size(len(names), buckets)
        lo, hi = micros(start), micros(end)
        step = served_step(step, lo, micros(self._clock.now()), self._kept)
        series = {name: ingest_pb2.Series(name=name) for name in names}
        if names:
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
                columns = series[row.name]
                columns.start_micros.extend(row.starts)
                columns.avg.extend(row.avg)
                columns.min.extend(row.min)
                columns.max.extend(row.max)
                columns.count.extend(row.count)
        return ingest_pb2.QueryMetricsResponse(series=list(series.values()), step_seconds=step)

    async def LatestMetrics(
        self, request: ingest_pb2.LatestMetricsRequest, context: Context
    ) -> ingest_pb2.LatestMetricsResponse:
        server_id, account_id = self._readable(request.server_id)
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
        server_id, account_id = self._readable(request.server_id)
        return ingest_pb2.ListMetricNamesResponse(
            names=await self._repo.metric_names(server_id, account_id)
        )

    async def LastSeen(
        self, request: ingest_pb2.LastSeenRequest, context: Context
    ) -> ingest_pb2.LastSeenResponse:
        identity = current_identity()
        if identity.account_id is None:
            raise PermissionDenied(ACCOUNT_REQUIRED)
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


def query_window(request: ingest_pb2.QueryMetricsRequest) -> tuple[datetime, datetime, int, int]:
    """(start, end, step seconds, buckets per series) of a query; InvalidQuery names a bad one."""
    step = request.step_seconds
    for name in ("from", "to"):
        fault = timestamp_fault(getattr(request, name))
        if fault is not None:
            raise InvalidQuery(f"{name} {fault}")
    start = getattr(request, "from").ToDatetime(tzinfo=UTC)
    end = request.to.ToDatetime(tzinfo=UTC)
    if step < 1:
        raise InvalidQuery("step must be at least 1 second")
    if end <= start:
        raise InvalidQuery("from must be before to")
    buckets = bucket_count(start, end, step)
    if buckets > MAX_POINTS_PER_SERIES:
        raise InvalidQuery(
            f"the query asks for {buckets} points per series; at most "
            f"{MAX_POINTS_PER_SERIES}: use a larger step or a shorter range"
        )
    return start, end, step, buckets


def check_query_size(names: int, buckets: int) -> None:
    """Refuse a query over the limits on names and on points in all."""
    if names > MAX_NAMES_PER_QUERY:
        raise InvalidQuery(
            f"the query covers {names} metrics; at most {MAX_NAMES_PER_QUERY}: "
            "choose them with names"
        )
    if names * buckets > MAX_POINTS_PER_QUERY:
        raise InvalidQuery(
            f"the query asks for {names * buckets} points; at most "
            f"{MAX_POINTS_PER_QUERY}: use a larger step, a shorter range or fewer names"
        )
