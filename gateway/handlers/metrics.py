"""Agent metrics: posting samples (the server's API key) and reading them back (key or session).

Posting is the hot path, so it does little per request: the body is read once and validated into
flat columns (gateway.samples) and handed to the `IngestBatcher`, which shares one WriteBatch
call among concurrent posts. 202 is answered only when the ingest service reports the group
transaction committed.

Reading: a key sees only its own server; a user sees the servers of their account, which the key
service confirms (GetServer with the caller's identity; deleted or foreign servers are NOT_FOUND)
before the ingest service, which filters by account again, is asked. Anything else is 404.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.body import json_response
from gateway.ingest_batcher import BatcherClosed, BatcherFull, IngestBatcher
from gateway.keys import AUTH, BACKENDS, CLOCK, METRICS
from gateway.problems import Problem
from gateway.samples import RFC3339, columns_from_body, micros, parse_timestamp_micros, read_body
from scout.ingest.v1 import ingest_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.identity import Identity, PrincipalKind
from scout_kit.sample_rules import (
    MAX_NAMES_PER_QUERY,
    MAX_POINTS_PER_QUERY,
    MAX_POINTS_PER_SERIES,
    MAX_STEP_SECONDS,
    METRIC_NAME,
    METRIC_NAME_PATTERN,
)
from scout_kit.timestamps import (
    EARLIEST_TIME,
    LATEST_TIME,
    TIME_RANGE_TEXT,
    format_time,
    to_timestamp,
)

DEFAULT_RANGE = timedelta(hours=1)
# The default step gives about this many points, rounded up to a step a person would choose.
DEFAULT_POINTS = 300
NICE_STEPS = (
    1,
    5,
    10,
    15,
    30,
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    10800,
    21600,
    43200,
    86400,
)
STEP = re.compile(r"(\d{1,9})([smhd]?)")
STEP_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
RETRY_AFTER_SECONDS = 1

BATCHER = web.AppKey("ingest_batcher", IngestBatcher)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _invalid_query(detail: str, parameter: str) -> Problem:
    return Problem(422, "Unprocessable Content", detail, type_="invalid-query", parameter=parameter)


def _busy(detail: str) -> Problem:
    return Problem(
        503,
        "Service Unavailable",
        detail,
        type_="ingest-busy",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


# Posting


async def post_metrics(request: web.Request) -> web.Response:
    identity = request[AUTH].identity
    if identity.kind is not PrincipalKind.SERVER or identity.account_id is None:
        raise Problem(
            403,
            "Forbidden",
            "Posting metrics needs the server's API key.",
            type_="api-key-required",
        )
    columns = columns_from_body(
        await read_body(request), request.app[CLOCK].now(), identity.subject, identity.account_id
    )
    try:
        result = await request.app[BATCHER].write(columns)
    except BatcherFull:
        raise _busy("The gateway has too many posts waiting for storage; retry shortly.") from None
    except BatcherClosed:
        raise _busy("This gateway is shutting down; retry.") from None
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED:
            raise _busy(
                "Metric storage cannot keep up right now; nothing of this post was stored. "
                "Retry shortly."
            ) from None
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise _busy(
                "Metric storage is unavailable; this post may not have been stored. Retrying "
                "it is safe: samples already stored are not duplicated."
            ) from None
        raise
    if result.error:
        raise Problem(422, "Unprocessable Content", result.error[:300], type_="invalid-metrics")
    return json_response({"accepted": result.accepted}, status=202)


# Reading


async def _readable_server(request: web.Request) -> tuple[Identity, str]:
    """The caller and the server id, if the caller may read that server; 404 otherwise."""
    identity = request[AUTH].identity
    try:
        server_id = str(uuid.UUID(request.match_info["server_id"]))
    except ValueError:
        raise _not_found() from None
    if identity.kind is PrincipalKind.SERVER:
        if identity.subject != server_id:
            raise _not_found()
    elif identity.kind is PrincipalKind.USER:
        backends = request.app[BACKENDS]
        # NOT_FOUND (deleted, another account's, never existed) becomes 404 in the middleware.
        await backends.keys.GetServer(
            keys_pb2.GetServerRequest(server_id=server_id),
            metadata=backends.metadata(identity),
            timeout=backends.timeout,
        )
    else:
        raise _not_found()
    return identity, server_id


def _not_found() -> Problem:
    return Problem(404, "Not Found", "server not found")


def _iso(ts: Timestamp) -> str:
    return format_time(ts.ToDatetime())


def _iso_datetime(moment: datetime) -> str:
    return format_time(moment)


def _query_time(request: web.Request, parameter: str) -> datetime | None:
    raw = request.query.get(parameter)
    if raw is None or raw == "":
        return None
    value: Any = raw
    try:
        value = float(raw) if not RFC3339.fullmatch(raw) else raw
    except ValueError:
        raise _invalid_query(
            f"{parameter} must be RFC 3339 text or unix seconds.", parameter
        ) from None
    try:
        us = parse_timestamp_micros(value, parameter)
    except Problem:
        raise _invalid_query(
            f"{parameter} must be RFC 3339 text or unix seconds.", parameter
        ) from None
    if not micros(EARLIEST_TIME) <= us <= micros(LATEST_TIME):
        raise _invalid_query(f"{parameter} must be between {TIME_RANGE_TEXT}.", parameter)
    return _EPOCH + timedelta(microseconds=us)


def _step(raw: str) -> int:
    match = STEP.fullmatch(raw.strip().lower())
    if not match:
        raise _invalid_query(
            "step must be a whole number of seconds, optionally with a unit: 30s, 5m, 1h, 1d.",
            "step",
        )
    seconds = int(match.group(1)) * STEP_UNITS[match.group(2)]
    if not 1 <= seconds <= MAX_STEP_SECONDS:
        raise _invalid_query(
            f"step must be from 1 second to {MAX_STEP_SECONDS // 86_400} days.", "step"
        )
    return seconds


def default_step(span_seconds: float) -> int:
    wanted = span_seconds / DEFAULT_POINTS
    for step in NICE_STEPS:
        if step >= wanted:
            return step
    return math.ceil(wanted / 86400) * 86400


def bucket_count(start: datetime, end: datetime, step_seconds: int) -> int:
    step = step_seconds * 1_000_000
    return (micros(end) - 1) // step - micros(start) // step + 1


def _names(request: web.Request) -> list[str]:
    names: list[str] = []
    for raw in request.query.getall("names", []):
        names.extend(n.strip() for n in raw.split(",") if n.strip())
    names = list(dict.fromkeys(names))
    for name in names:
        if not METRIC_NAME.fullmatch(name):
            raise _invalid_query(
                f"The metric name {name[:60]!r} must match {METRIC_NAME_PATTERN}.", "names"
            )
    if len(names) > MAX_NAMES_PER_QUERY:
        raise _invalid_query(f"At most {MAX_NAMES_PER_QUERY} names per query.", "names")
    return names


async def query_metrics(request: web.Request) -> web.Response:
    identity, server_id = await _readable_server(request)
    names = _names(request)
    end = _query_time(request, "to") or request.app[CLOCK].now()
    start = _query_time(request, "from") or end - DEFAULT_RANGE
    if start >= end:
        raise _invalid_query("from must be before to.", "from")
    raw_step = request.query.get("step", "")
    step = _step(raw_step) if raw_step else default_step((end - start).total_seconds())
    points = bucket_count(start, end, step)
    if points > MAX_POINTS_PER_SERIES:
        raise _invalid_query(
            f"This query asks for {points} points per series; at most {MAX_POINTS_PER_SERIES}. "
            "Use a larger step or a shorter range.",
            "step",
        )
    if len(names) * points > MAX_POINTS_PER_QUERY:
        raise _invalid_query(
            f"This query asks for {len(names) * points} points; at most "
            f"{MAX_POINTS_PER_QUERY}. Use a larger step, a shorter range or fewer names.",
            "names",
        )
    request_message = ingest_pb2.QueryMetricsRequest(
        server_id=server_id, names=names, to=to_timestamp(end), step_seconds=step
    )
    getattr(request_message, "from").CopyFrom(to_timestamp(start))
    backends = request.app[BACKENDS]
    response = await backends.ingest.QueryMetrics(
        request_message, metadata=backends.metadata(identity), timeout=backends.timeout
    )
    return json_response(
        {
            "server_id": server_id,
            "from": _iso_datetime(start),
            "to": _iso_datetime(end),
            "step_seconds": response.step_seconds,
            "series": [
                {
                    "name": series.name,
                    "points": [
                        {
                            "ts": _iso(p.ts),
                            "avg": p.avg,
                            "min": p.min,
                            "max": p.max,
                            "count": p.count,
                        }
                        for p in series.points
                    ],
                }
                for series in response.series
            ],
        }
    )


async def latest_metrics(request: web.Request) -> web.Response:
    identity, server_id = await _readable_server(request)
    backends = request.app[BACKENDS]
    response = await backends.ingest.LatestMetrics(
        ingest_pb2.LatestMetricsRequest(server_id=server_id),
        metadata=backends.metadata(identity),
        timeout=backends.timeout,
    )
    return json_response(
        {
            "server_id": server_id,
            "metrics": [
                {"name": v.name, "value": v.value, "ts": _iso(v.ts)} for v in response.values
            ],
        }
    )


async def metric_names(request: web.Request) -> web.Response:
    identity, server_id = await _readable_server(request)
    backends = request.app[BACKENDS]
    response = await backends.ingest.ListMetricNames(
        ingest_pb2.ListMetricNamesRequest(server_id=server_id),
        metadata=backends.metadata(identity),
        timeout=backends.timeout,
    )
    return json_response({"server_id": server_id, "names": list(response.names)})


async def _batcher_ctx(app: web.Application) -> AsyncIterator[None]:
    """The batcher lives inside the backends' context: it is closed (its accepted posts
    answered) before the channels are."""
    batcher = IngestBatcher(app[BACKENDS], stats=app[METRICS].batches)
    app[METRICS].watch_batcher(batcher)
    app[BATCHER] = batcher
    yield
    await batcher.close()


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/metrics", post_metrics)
    app.router.add_get("/api/v1/servers/{server_id}/metrics", query_metrics)
    app.router.add_get("/api/v1/servers/{server_id}/metrics/latest", latest_metrics)
    app.router.add_get("/api/v1/servers/{server_id}/metric-names", metric_names)
    # Registered after create_app's backends context, so it starts after and stops before it.
    app.cleanup_ctx.append(_batcher_ctx)
