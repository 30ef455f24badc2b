"""Agent metrics: posting samples (API key of the server) into the ingest service."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from google.protobuf.timestamp_pb2 import Timestamp

from gateway.body import json_response, read_json_object
from gateway.keys import AUTH, BACKENDS, CLOCK
from gateway.problems import Problem
from scout.ingest.v1 import ingest_pb2
from scout_kit.identity import PrincipalKind

MAX_BODY_BYTES = 1024 * 1024
MAX_SAMPLES = 1000
MAX_METRICS_PER_SAMPLE = 500
MAX_FUTURE = timedelta(minutes=5)
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/-]{1,200}$")


def _invalid(detail: str, **extensions: Any) -> Problem:
    return Problem(422, "Unprocessable Content", detail, type_="invalid-metrics", **extensions)


def parse_timestamp(value: Any, where: str) -> datetime:
    if isinstance(value, bool):
        raise _invalid(f"{where}.ts must be RFC 3339 text or unix seconds.", pointer=where)
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise _invalid(f"{where}.ts must be a finite number.", pointer=where)
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise _invalid(f"{where}.ts is out of range.", pointer=where) from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise _invalid(f"{where}.ts is not an RFC 3339 timestamp.", pointer=where) from None
        if parsed.tzinfo is None:
            raise _invalid(f"{where}.ts must include a time zone offset.", pointer=where)
        return parsed.astimezone(UTC)
    raise _invalid(f"{where}.ts must be RFC 3339 text or unix seconds.", pointer=where)


def parse_samples(body: dict[str, Any], now: datetime, retention: timedelta) -> list[ingest_pb2.Sample]:
    samples = body.get("samples")
    if not isinstance(samples, list) or not samples:
        raise _invalid("samples must be a non-empty array.", pointer="/samples")
    if len(samples) > MAX_SAMPLES:
        raise _invalid(f"At most {MAX_SAMPLES} samples per request.", pointer="/samples")
    parsed = []
    for index, sample in enumerate(samples):
        where = f"/samples/{index}"
        if not isinstance(sample, dict):
            raise _invalid(f"{where} must be an object.", pointer=where)
        ts = parse_timestamp(sample.get("ts"), where)
        if ts > now + MAX_FUTURE:
            raise _invalid(f"{where}.ts is more than 5 minutes in the future.", pointer=where)
        if ts < now - retention:
            raise _invalid(f"{where}.ts is older than the retention period.", pointer=where)
        metrics = sample.get("metrics")
        if not isinstance(metrics, dict) or not metrics:
            raise _invalid(f"{where}.metrics must be a non-empty object.", pointer=where)
        if len(metrics) > MAX_METRICS_PER_SAMPLE:
            raise _invalid(
                f"{where}.metrics has more than {MAX_METRICS_PER_SAMPLE} metrics.", pointer=where
            )
        values = []
        for name, value in metrics.items():
            if not METRIC_NAME.match(name):
                raise _invalid(
                    f"{where}.metrics: metric name {name[:60]!r} must match "
                    "[A-Za-z0-9_.:/-]{1,200}.",
                    pointer=where,
                )
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _invalid(f"{where}.metrics.{name} must be a number.", pointer=where)
            if not math.isfinite(value):
                raise _invalid(f"{where}.metrics.{name} must be a finite number.", pointer=where)
            values.append(ingest_pb2.MetricValue(name=name, value=float(value)))
        stamp = Timestamp()
        stamp.FromDatetime(ts)
        parsed.append(ingest_pb2.Sample(ts=stamp, metrics=values))
    return parsed


async def post_metrics(request: web.Request) -> web.Response:
    identity = request[AUTH].identity
    if identity.kind is not PrincipalKind.SERVER:
        raise Problem(403, "Forbidden", "Posting metrics needs the server's API key.",
                      type_="api-key-required")
    body = await read_json_object(request, MAX_BODY_BYTES)
    samples = parse_samples(body, request.app[CLOCK].now(), timedelta(days=30))
    backends = request.app[BACKENDS]
    response = await backends.ingest.WriteSamples(
        ingest_pb2.WriteSamplesRequest(server_id=identity.subject, samples=samples),
        metadata=backends.metadata(identity),
        timeout=backends.timeout,
    )
    return json_response({"accepted": response.accepted}, status=202)


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/metrics", post_metrics)
