"""Tracing through the real services: a W3C traceparent accepted (or a trace started) at the
gateway and carried over every gRPC hop, and the trace id beside the request id in the logs."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from scout_admin.commands import Admin
from scout_kit.logging import RequestIdFilter
from scout_kit.tracing import create_tracer_provider
from tests.gateway.keys_support import new_server
from tests.stack import Environment, Stack, client_session, running_stack

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
# Component of running_stack -> the service.name it traces as.
SERVICES = {
    "gateway": "gateway",
    "auth": "auth_service",
    "keys": "key_service",
    "ingest": "ingest_service",
}


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
async def traced_stack(env: Environment, exporter: InMemorySpanExporter) -> AsyncIterator[Stack]:
    """Every component with its own provider (named as it is deployed), one exporter."""
    providers: dict[str, TracerProvider] = {
        component: create_tracer_provider(name, [SimpleSpanProcessor(exporter)])
        for component, name in SERVICES.items()
    }
    async with running_stack(
        env, tracer_providers=providers, gateway_overrides={"ACCESS_LOG": "all"}
    ) as stack:
        yield stack
    for provider in providers.values():
        provider.shutdown()


def service_of(span: ReadableSpan) -> str:
    return str(span.resource.attributes["service.name"])


def in_trace(exporter: InMemorySpanExporter, trace_id: int) -> list[ReadableSpan]:
    return [
        s for s in exporter.get_finished_spans() if s.context is not None
        and s.context.trace_id == trace_id
    ]  # fmt: skip


async def post_metric(stack: Stack, api_key: str, headers: dict[str, str]) -> str:
    sample = {"samples": [{"ts": time.time(), "metrics": {"cpu.percent": 12.5}}]}
    async with (
        client_session(stack.env) as http,
        http.post(
            f"{stack.gateway.url}/api/v1/metrics",
            json=sample,
            headers={"X-API-Key": api_key, **headers},
        ) as response,
    ):
        assert response.status == 202, await response.text()
        return response.headers["X-Request-ID"]


async def test_one_posted_metric_is_one_connected_trace_across_gateway_keys_and_ingest(
    traced_stack: Stack, admin: Admin, exporter: InMemorySpanExporter
) -> None:
    server = await new_server(admin)  # unknown to the gateway's cache: ValidateKey is called
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    await post_metric(traced_stack, server.api_key, {"traceparent": traceparent})

    spans = in_trace(exporter, int(TRACE_ID, 16))
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    (http,) = [s for s in spans if s.kind is SpanKind.SERVER and service_of(s) == "gateway"]
    assert http.parent is not None and http.parent.span_id == int(PARENT_SPAN_ID, 16)
    assert http.attributes is not None and http.attributes.get("http.route", "") in (
        "",
        "/api/v1/metrics",
    )

    servers = {
        (service_of(s), s.name) for s in spans if s.kind is SpanKind.SERVER and s is not http
    }
    assert ("key_service", "/scout.keys.v1.KeyService/ValidateKey") in servers
    assert ("ingest_service", "/scout.ingest.v1.IngestService/WriteBatch") in servers
    for span in spans:
        if span is http:
            continue
        assert span.parent is not None, span.name
        parent = by_id[span.parent.span_id]  # every span's parent is in the same trace
        if span.kind is SpanKind.SERVER:
            # A service's span hangs under the gateway's call to it.
            assert parent.kind is SpanKind.CLIENT and service_of(parent) == "gateway"
            assert parent.name == span.name
        else:
            assert span.kind is SpanKind.CLIENT and service_of(span) == "gateway"
            assert parent is http


async def test_without_a_traceparent_the_gateway_starts_a_trace(
    traced_stack: Stack, admin: Admin, exporter: InMemorySpanExporter
) -> None:
    server = await new_server(admin)
    await post_metric(traced_stack, server.api_key, {})
    roots = [
        s for s in exporter.get_finished_spans() if s.parent is None and service_of(s) == "gateway"
        and s.kind is SpanKind.SERVER
    ]  # fmt: skip
    assert len(roots) == 1
    assert roots[0].context is not None
    trace = in_trace(exporter, roots[0].context.trace_id)
    assert {service_of(s) for s in trace} >= {"gateway", "key_service", "ingest_service"}


async def test_logs_carry_the_trace_id_beside_the_request_id(
    traced_stack: Stack, admin: Admin, caplog: pytest.LogCaptureFixture
) -> None:
    server = await new_server(admin)
    caplog.handler.addFilter(RequestIdFilter())
    caplog.set_level(logging.INFO, logger="gateway.access")
    traceparent = f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"
    request_id = await post_metric(
        traced_stack, server.api_key, {"traceparent": traceparent, "X-Request-ID": "trace-me-1"}
    )
    assert request_id == "trace-me-1"
    (line,) = [r for r in caplog.records if r.name == "gateway.access"]
    assert getattr(line, "request_id", None) == "trace-me-1"
    assert getattr(line, "trace_id", None) == TRACE_ID
