"""OpenTelemetry tracing: one tracer provider per process, an OTLP exporter only when configured.

The gateway accepts a W3C `traceparent` (or starts a trace) through OpenTelemetry's aiohttp
middleware; every gRPC hop carries it through OpenTelemetry's grpc.aio client and server
interceptors. With tracing off (no OTLP endpoint), none of them is installed, so the hot path
pays nothing. Log lines carry the trace id beside the request id (`scout_kit.logging`).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import warnings
from collections.abc import AsyncIterator, Sequence

import grpc
from aiohttp.typedefs import Middleware
from opentelemetry.instrumentation.aiohttp_server import (
    AioHttpServerInstrumentor,
    create_aiohttp_middleware,
)
from opentelemetry.instrumentation.grpc import (
    aio_client_interceptors,
    aio_server_interceptor,
    filters,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from scout_kit.settings import TracingSettings


def create_tracer_provider(
    service_name: str, processors: Sequence[SpanProcessor], sample_ratio: float = 1.0
) -> TracerProvider:
    """A provider naming the service, sampling new traces at `sample_ratio` and following the
    caller's decision for continued ones."""
    provider = TracerProvider(
        resource=Resource.create(
            {"service.name": service_name, "service.instance.id": socket.gethostname()}
        ),
        sampler=ParentBased(TraceIdRatioBased(sample_ratio)),
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def otlp_tracer_provider(settings: TracingSettings) -> TracerProvider | None:
    """The configured provider exporting over OTLP/gRPC, or None when tracing is off."""
    if settings.endpoint is None:
        return None
    # Imported only when used: the exporter pulls in its protobuf modules.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    exporter = OTLPSpanExporter(endpoint=settings.endpoint)
    return create_tracer_provider(
        settings.service_name, [BatchSpanProcessor(exporter)], settings.sample_ratio
    )


@contextlib.asynccontextmanager
async def provider_lifetime(provider: TracerProvider | None) -> AsyncIterator[None]:
    """Flush and shut the provider down on the way out, so the last spans are exported."""
    try:
        yield
    finally:
        if provider is not None:
            await asyncio.to_thread(provider.shutdown)


def aiohttp_middleware(provider: TracerProvider) -> Middleware:
    """OpenTelemetry's aiohttp server middleware: adopts a W3C traceparent or starts a trace."""
    instrumentor = AioHttpServerInstrumentor()
    if not instrumentor.is_instrumented_by_opentelemetry:
        # The middleware reads module settings (excluded URLs, semantic conventions, its
        # instruments) that only instrument() sets up. instrument() also swaps web.Application
        # for every app in the process, which is undone at once: the factory adds the
        # middleware to its own app, with its own provider.
        with warnings.catch_warnings():
            # aiohttp discourages the subclass instrument() makes, which is dropped right away.
            warnings.filterwarnings("ignore", "Inheritance class", DeprecationWarning)
            instrumentor.instrument(tracer_provider=provider)
        instrumentor.uninstrument()
    middleware: Middleware = create_aiohttp_middleware(tracer_provider=provider)
    return middleware


def server_interceptors(provider: TracerProvider | None) -> list[grpc.aio.ServerInterceptor]:
    """The tracing interceptor for a gRPC server (health checks are not traced)."""
    if provider is None:
        return []
    return [
        aio_server_interceptor(
            tracer_provider=provider, filter_=filters.negate(filters.health_check())
        )
    ]


def client_interceptors(provider: TracerProvider | None) -> list[grpc.aio.ClientInterceptor]:
    if provider is None:
        return []
    return list(aio_client_interceptors(tracer_provider=provider))
