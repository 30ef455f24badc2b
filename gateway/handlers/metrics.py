"""Agent metrics: posting samples (the server's API key) and reading them back (key or session).

Posting is the hot path, so it does little per request: the body is read once and validated into
flat columns (gateway.samples) and handed to the `IngestBatcher`, which shares one WriteBatch
call among concurrent posts. 202 is answered only when the ingest service reports the group
transaction committed.

Reading: a key sees only its own server; a user sees the servers of their account, which the key
service confirms (GetServer with the caller's identity; deleted or foreign servers are NOT_FOUND)
before the ingest service, which filters by account again, is asked. Anything else is 404.

The body is read by gateway.request_body, validated by gateway.samples; queries are planned by
gateway.metric_query and rendered by gateway.rendering; the batcher's lifetime is
gateway.ingest_batcher.batcher_context.
"""

from __future__ import annotations

import uuid

import grpc
from aiohttp import web

from gateway.app_keys import AUTH, BACKENDS, CLOCK
from gateway.ingest_batcher import BATCHER, BatcherClosed, BatcherFull
from gateway.metric_query import metric_query
from gateway.problems import Problem
from gateway.rendering import json_response, latest_json, series_json
from gateway.request_body import read_body
from gateway.samples import columns_from_body
from scout.ingest.v1 import ingest_pb2
from scout.keys.v1 import keys_pb2
from scout_kit.identity import Identity, PrincipalKind
from scout_kit.sample_rules import MAX_BODY_BYTES
from scout_kit.timestamps import to_timestamp

RETRY_AFTER_SECONDS = 1


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
    raw = await read_body(request, max_bytes=MAX_BODY_BYTES, gzip=True)
    columns = columns_from_body(
        raw, request.app[CLOCK].now(), identity.subject, identity.account_id
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


async def query_metrics(request: web.Request) -> web.Response:
    identity, server_id = await _readable_server(request)
    query = metric_query(request, request.app[CLOCK].now())
    request_message = ingest_pb2.QueryMetricsRequest(
        server_id=server_id,
        names=query.names,
        to=to_timestamp(query.end),
        step_seconds=query.step_seconds,
    )
    getattr(request_message, "from").CopyFrom(to_timestamp(query.start))
    backends = request.app[BACKENDS]
    response = await backends.ingest.QueryMetrics(
        request_message, metadata=backends.metadata(identity), timeout=backends.timeout
    )
    return json_response(series_json(server_id, query.start, query.end, response))


async def latest_metrics(request: web.Request) -> web.Response:
    identity, server_id = await _readable_server(request)
    backends = request.app[BACKENDS]
    response = await backends.ingest.LatestMetrics(
        ingest_pb2.LatestMetricsRequest(server_id=server_id),
        metadata=backends.metadata(identity),
        timeout=backends.timeout,
    )
    return json_response(latest_json(server_id, response))


async def metric_names(request: web.Request) -> web.Response:
    identity, server_id = await _readable_server(request)
    backends = request.app[BACKENDS]
    response = await backends.ingest.ListMetricNames(
        ingest_pb2.ListMetricNamesRequest(server_id=server_id),
        metadata=backends.metadata(identity),
        timeout=backends.timeout,
    )
    return json_response({"server_id": server_id, "names": list(response.names)})


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/metrics", post_metrics)
    app.router.add_get("/api/v1/servers/{server_id}/metrics", query_metrics)
    app.router.add_get("/api/v1/servers/{server_id}/metrics/latest", latest_metrics)
    app.router.add_get("/api/v1/servers/{server_id}/metric-names", metric_names)
