"""gRPC server bootstrap: mutual TLS, health service, request id, internal identity, tracing,
metrics, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, Protocol, TypeVar, cast

import aiopg
import grpc
import psycopg2
import redis.asyncio as aioredis
import redis.exceptions
import uvloop
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

from scout_kit.context import (
    AUTHORIZATION_METADATA,
    CLIENT_ADDRESS_METADATA,
    REQUEST_ID_METADATA,
    accept_request_id,
    client_address_var,
    request_id_var,
)
from scout_kit.errors import DomainError
from scout_kit.heap import freeze_startup_heap
from scout_kit.identity import Identity, InvalidToken, PrincipalKind, TokenVerifier
from scout_kit.logging import configure_logging
from scout_kit.metrics import (
    DependencyProbe,
    MetricsEndpoint,
    PoolCollector,
    create_registry,
    database_round_trip,
)
from scout_kit.settings import CommonSettings, SettingsError
from scout_kit.text import text_fault
from scout_kit.tls import CertificateFiles, TlsFilesError
from scout_kit.tracing import otlp_tracer_provider, server_interceptors

log = logging.getLogger(__name__)

RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")
# A grpc.aio unary-unary method: a coroutine function of the request and the call's context.
_UnaryBehaviour = Callable[
    [RequestT, grpc.aio.ServicerContext[RequestT, ResponseT]], Awaitable[ResponseT]
]

identity_var: ContextVar[Identity | None] = ContextVar("scout_identity", default=None)

# Methods anyone may call without an identity token: probes must work without credentials.
_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")

# Failures of a dependency we recover from by ourselves: the caller may retry (UNAVAILABLE).
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)


def current_identity() -> Identity:
    """The verified caller of the RPC being served (the interceptor guarantees one)."""
    identity = identity_var.get()
    if identity is None:
        raise RuntimeError("current_identity() outside an authenticated RPC")
    return identity


async def require_service(
    context: grpc.aio.ServicerContext[Message, Message], *names: str
) -> Identity:
    """Only the named internal services (usually the gateway) may call this RPC."""
    identity = current_identity()
    if identity.kind is not PrincipalKind.SERVICE or identity.subject not in names:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED, "this method is for internal services"
        )
    return identity


class RpcMetrics:
    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.handled = Counter(
            "scout_grpc_server_handled",
            "RPCs completed, by method and status code",
            ["service", "method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "scout_grpc_server_handling_seconds",
            "RPC handling time, by method and status code",
            ["service", "method", "code"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )
        self.service = service
        # The labelled children of each (method, code): labels() takes a lock and builds a key
        # on every call. Bounded by the methods served times the status codes.
        self._children: dict[tuple[str, grpc.StatusCode], tuple[str, Counter, Histogram]] = {}

    def record(self, method: str, code: grpc.StatusCode, elapsed: float) -> None:
        children = self._children.get((method, code))
        if children is None:
            name = method.rsplit("/", 1)[-1]
            children = (
                name,
                self.handled.labels(self.service, name, code.name),
                self.latency.labels(self.service, name, code.name),
            )
            self._children[(method, code)] = children
        name, handled, latency = children
        handled.inc()
        latency.observe(elapsed)
        if not log.isEnabledFor(logging.DEBUG):
            return
        log.debug(
            "rpc %s %s",
            name,
            code.name,
            extra={"rpc": name, "code": code.name, "duration_ms": round(elapsed * 1000, 2)},
        )


class ServerInterceptor(grpc.aio.ServerInterceptor):
    """Per call: adopt the request id, verify the identity token, map domain errors (each names
    its code and public message) and stray ones, count."""

    def __init__(self, verifier: TokenVerifier, metrics: RpcMetrics) -> None:
        self._verifier = verifier
        self._metrics = metrics
        # method -> (the behaviour found for it, our handler around it): built once per method,
        # not per call, and built again should the behaviour found ever change.
        self._wrapped: dict[str, tuple[object, grpc.RpcMethodHandler[object, object]]] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[RequestT, ResponseT] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[RequestT, ResponseT] | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        if handler is None or handler.unary_unary is None or method.startswith(_PUBLIC_PREFIXES):
            return handler
        found = self._wrapped.get(method)
        if found is not None and found[0] is handler.unary_unary:
            return cast("grpc.RpcMethodHandler[RequestT, ResponseT]", found[1])
        # grpc.aio's handlers are coroutine functions, which grpc's stubs do not say.
        inner = cast(
            _UnaryBehaviour[RequestT, ResponseT],
            handler.unary_unary,
        )

        async def wrapper(
            request: RequestT, context: grpc.aio.ServicerContext[RequestT, ResponseT]
        ) -> ResponseT:
            return await self._serve(inner, method, request, context)

        wrapped = grpc.unary_unary_rpc_method_handler(
            wrapper,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
        self._wrapped[method] = (handler.unary_unary, cast(Any, wrapped))
        return wrapped

    async def _serve(
        self,
        inner: _UnaryBehaviour[RequestT, ResponseT],
        method: str,
        request: RequestT,
        context: grpc.aio.ServicerContext[RequestT, ResponseT],
    ) -> ResponseT:
        metadata = {key: value for key, value in context.invocation_metadata() or ()}
        request_id = accept_request_id(_text(metadata.get(REQUEST_ID_METADATA)))
        rid_token = request_id_var.set(request_id)
        address = _text(metadata.get(CLIENT_ADDRESS_METADATA)) or ""
        addr_token = client_address_var.set(address[:100])
        started = time.perf_counter()
        code = grpc.StatusCode.OK
        try:
            # Echoed with the status, in the call's last batch: a separate initial-metadata send
            # costs its own batch and HTTP/2 frame on both sides of every call.
            context.set_trailing_metadata(((REQUEST_ID_METADATA, request_id),))
            identity = _verify(self._verifier, _text(metadata.get(AUTHORIZATION_METADATA)))
            if identity is None:
                code = grpc.StatusCode.UNAUTHENTICATED
                await context.abort(code, "a valid internal identity token is required")
            fault = message_text_fault(request) if isinstance(request, Message) else None
            if fault is not None:
                code = grpc.StatusCode.INVALID_ARGUMENT
                await context.abort(code, fault)
            id_token = identity_var.set(identity)
            try:
                return await inner(request, context)
            finally:
                identity_var.reset(id_token)
        except grpc.aio.AbortError:
            code = cast(grpc.StatusCode | None, context.code()) or code
            raise
        except DomainError as exc:
            # The one place a domain error becomes a status: its class names the code, and
            # its message is written for the caller.
            code = exc.code
            await context.abort(code, exc.message)
        except DEPENDENCY_ERRORS as exc:
            code = grpc.StatusCode.UNAVAILABLE
            log.warning("dependency unavailable in %s: %r", method, exc)
            await context.abort(code, "a dependency is unavailable; retry later")
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", method)
            await context.abort(code, "internal error")
        finally:
            self._metrics.record(method, code, time.perf_counter() - started)
            request_id_var.reset(rid_token)
            client_address_var.reset(addr_token)


def message_text_fault(message: Message, path: str = "") -> str | None:
    """Why a request's text cannot be taken (scout_kit.text: no U+0000, which PostgreSQL text
    cannot hold), naming the field; None when every string field, however nested, is fine."""
    for field, value in message.ListFields():
        where = f"{path}{field.name}"
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_field, value_field = field.message_type.fields
            for key, item in value.items():
                if key_field.type == FieldDescriptor.TYPE_STRING and text_fault(key):
                    return f"a key of {where} holds {text_fault(key)}"
                fault = _value_fault(value_field, item, f"{where}[]")
                if fault is not None:
                    return fault
        elif field.is_repeated:
            if field.type == FieldDescriptor.TYPE_STRING:
                # One check over the joined values: repeated names can be many.
                fault = text_fault("".join(value))
                if fault is not None:
                    return f"{where} holds {fault}"
            elif field.type == FieldDescriptor.TYPE_MESSAGE and not _items_text_fine(
                field.message_type, value
            ):
                for item in value:
                    fault = message_text_fault(item, f"{where}[].")
                    if fault is not None:
                        return fault
        else:
            fault = _value_fault(field, value, where)
            if fault is not None:
                return fault
    return None


@functools.cache
def _text_fields(descriptor: Descriptor) -> tuple[str, ...] | None:
    """The string fields (single or repeated) of a message type that holds no messages or
    maps, which `_items_text_fine` checks for many items at once; None for any other type."""
    names = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return None
        if field.type == FieldDescriptor.TYPE_STRING:
            names.append(field.name)
    return tuple(names)


def _items_text_fine(descriptor: Descriptor | None, items: Iterable[Message]) -> bool:
    """True when every string of these flat messages is fine, checked field by field over all
    items joined (a fault is a property of single characters, so joining hides none): a batch
    of many entries costs a few checks. False means: walk the items to name the fault."""
    fields = None if descriptor is None else _text_fields(descriptor)
    if fields is None:
        return False
    for name in fields:
        # A repeated field's values are joined per item first; a single one is the text.
        texts = (t if isinstance(t, str) else "".join(t) for t in (getattr(i, name) for i in items))
        if text_fault("".join(texts)) is not None:
            return False
    return True


def _value_fault(field: FieldDescriptor, value: object, where: str) -> str | None:
    if field.type == FieldDescriptor.TYPE_STRING and isinstance(value, str):
        fault = text_fault(value)
        return None if fault is None else f"{where} holds {fault}"
    if field.type == FieldDescriptor.TYPE_MESSAGE and isinstance(value, Message):
        return message_text_fault(value, f"{where}.")
    return None


def _text(value: str | bytes | None) -> str | None:
    if isinstance(value, bytes):
        return value.decode("latin-1")
    return value


def _verify(verifier: TokenVerifier, header: str | None) -> Identity | None:
    if not header or not header.startswith("Bearer "):
        return None
    try:
        return verifier.verify(header.removeprefix("Bearer "))
    except InvalidToken as exc:
        log.info("rejected internal token: %s", exc)
        return None


class ReloadingServerCredentials:
    """Server credentials that require a client certificate of the internal CA and pick up
    new files at the next handshake (see scout_kit.tls)."""

    def __init__(self, files: CertificateFiles) -> None:
        self._files = files
        self._lock = threading.Lock()  # gRPC asks from its own threads
        self._stamp = files.stamp()
        self._initial = _certificate_configuration(files)
        self.reloads = 0

    def credentials(self) -> grpc.ServerCredentials:
        # The fetcher may answer None ("keep the current configuration"), which grpc's
        # documentation allows and its type stubs do not say.
        fetch = cast(Callable[[], grpc.ServerCertificateConfiguration], self._fetch)
        return grpc.dynamic_ssl_server_credentials(
            self._initial, fetch, require_client_authentication=True
        )

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """None keeps the configuration in use: the files did not change, or are not usable."""
        with self._lock:
            stamp = self._files.stamp()
            if stamp == self._stamp:
                return None
            self._stamp = stamp
            try:
                configuration = _certificate_configuration(self._files)
            except TlsFilesError as exc:
                log.warning("internal TLS files changed but are not usable; kept the old: %s", exc)
                return None
            self.reloads += 1
            log.info("internal TLS certificate reloaded from %s", self._files.cert_file)
            return configuration


def _certificate_configuration(files: CertificateFiles) -> grpc.ServerCertificateConfiguration:
    material = files.load()
    return grpc.ssl_server_certificate_configuration(
        [(material.private_key, material.certificate_chain)], root_certificates=material.ca
    )


class GrpcService:
    """A built gRPC service: its server, bound port, health state and the resources it owns."""

    def __init__(
        self,
        name: str,
        server: grpc.aio.Server,
        port: int,
        health: health_aio.HealthServicer,
        resources: contextlib.AsyncExitStack,
        service_names: Iterable[str],
        common: CommonSettings,
        registry: CollectorRegistry,
        tls: ReloadingServerCredentials,
    ) -> None:
        self.name = name
        self.server = server
        self.port = port
        self.health = health
        self._resources = resources
        self._service_names = list(service_names)
        self._common = common
        self.registry = registry
        self.tls = tls
        self.metrics_endpoint = MetricsEndpoint(registry)
        self.health_port: int | None = None
        self._health_server: grpc.aio.Server | None = None
        self._probes: list[DependencyProbe] = []
        self._tasks: list[asyncio.Task[None]] = []

    def monitor(self, collector: Collector) -> None:
        """Expose a component's state (read at scrape time) on this service's metrics."""
        self.registry.register(collector)

    def monitor_database(self, pool: aiopg.Pool) -> None:
        self.registry.register(PoolCollector(pool))
        self._probes.append(DependencyProbe("db", database_round_trip(pool), self.registry))

    def monitor_redis(self, client: aioredis.Redis) -> None:
        self._probes.append(DependencyProbe("redis", client.ping, self.registry))

    async def start(self) -> None:
        await self.server.start()
        for service_name in ["", *self._service_names]:
            await self.health.set(service_name, health_pb2.HealthCheckResponse.SERVING)
        if self._common.health_addr:
            self._health_server, self.health_port = _health_only_server(
                self.health, self._common.health_addr
            )
            await self._health_server.start()
        if self._common.metrics_addr:
            self.metrics_endpoint.serve(self._common.metrics_addr)
        self._tasks = [
            asyncio.create_task(probe.run(), name=f"{self.name}-{probe.name}-probe")
            for probe in self._probes
        ]
        log.info("%s serving gRPC (mutual TLS) on port %d", self.name, self.port)

    async def stop(self, grace: float) -> None:
        """Report NOT_SERVING, let in-flight RPCs finish within `grace`, then release resources."""
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
        if self._health_server is not None:
            await self._health_server.stop(0)
        for probe in self._probes:
            probe.stop()  # a round trip under way finishes before its pool or client closes
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.metrics_endpoint.close()
        await self._resources.aclose()
        log.info("%s stopped", self.name)


def _health_only_server(
    health: health_aio.HealthServicer, address: str
) -> tuple[grpc.aio.Server, int]:
    """A plain-text listener with nothing but the health service: it reveals only SERVING or
    NOT_SERVING, for probes that cannot present a client certificate."""
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot listen on {address} (HEALTH_ADDR)")
    return server, port


async def build_grpc_service(
    *,
    name: str,
    common: CommonSettings,
    verifier: TokenVerifier,
    register: Callable[[grpc.aio.Server], list[str]],
    resources: contextlib.AsyncExitStack,
    listen_addr: str | None = None,
    tracer_provider: TracerProvider | None = None,
    registry: CollectorRegistry | None = None,
) -> GrpcService:
    """Create the server with interceptors and health; `register` adds servicers and returns
    their full service names (reported in the health service). Tracing uses `tracer_provider`,
    else the one `common.tracing` configures (none when tracing is off). A service whose
    components record metrics before this is called passes their `registry`
    (`scout_kit.metrics.create_registry`)."""
    registry = registry or create_registry(name)
    metrics = RpcMetrics(registry, name)
    if tracer_provider is None:
        tracer_provider = otlp_tracer_provider(common.tracing)
        if tracer_provider is not None:
            resources.push_async_callback(asyncio.to_thread, tracer_provider.shutdown)
    server = grpc.aio.server(
        # Tracing first, so the request-id interceptor's log lines carry the trace id.
        interceptors=[
            *server_interceptors(tracer_provider),
            ServerInterceptor(verifier, metrics),
        ],
        options=[
            ("grpc.max_receive_message_length", 8 * 1024 * 1024),
            ("grpc.so_reuseport", 0),
            # Clients re-resolve and rebalance only when a connection ends: ending each after a
            # few minutes lets gateways find replicas added by an autoscaler (and makes every
            # connection handshake again with the current certificates).
            ("grpc.max_connection_age_ms", 300_000),
            ("grpc.max_connection_age_grace_ms", 30_000),
            # Tolerate the keepalive pings our clients send (scout_kit.grpc_client).
            ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    service_names = register(server)
    tls = ReloadingServerCredentials(common.internal_tls)
    address = listen_addr or common.listen_addr
    port = server.add_secure_port(address, tls.credentials())
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return GrpcService(name, server, port, health, resources, service_names, common, registry, tls)


async def serve_until_signalled(service: GrpcService, grace: float) -> None:
    """Run until SIGTERM or SIGINT, then drain in-flight RPCs and stop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await service.start()
    frozen = freeze_startup_heap()
    log.debug("%s froze %d start-up objects out of the cycle collector", service.name, frozen)
    await stopping.wait()
    log.info("%s received a stop signal; draining for up to %.0fs", service.name, grace)
    await service.stop(grace)


class _ServiceSettings(Protocol):
    @property
    def common(self) -> CommonSettings: ...


S = TypeVar("S", bound=_ServiceSettings)


def run_service_main(
    name: str,
    from_env: Callable[[Mapping[str, str]], S],
    create_server: Callable[[S], Awaitable[GrpcService]],
) -> None:
    """What every service's `__main__` does: settings from the environment (exit with a message
    naming the bad variable), logging, build, serve until SIGTERM."""
    try:
        settings = from_env(os.environ)
    except SettingsError as exc:
        raise SystemExit(f"{name}: configuration error: {exc}") from None
    configure_logging(name, settings.common.log_level, settings.common.log_format)

    async def run() -> None:
        service = await create_server(settings)
        await serve_until_signalled(service, settings.common.shutdown_grace_seconds)

    try:
        uvloop.run(run())
    except DEPENDENCY_ERRORS as exc:
        # At start, an unreachable dependency is a configuration problem: one line, no trace.
        raise SystemExit(f"{name}: {unreachable_dependency(exc)}") from None


def unreachable_dependency(exc: BaseException) -> str:
    """One line naming the setting behind a dependency that cannot be reached."""
    if isinstance(exc, psycopg2.Error):
        what = "cannot reach PostgreSQL (DATABASE_URL)"
    elif isinstance(exc, redis.exceptions.RedisError):
        what = "cannot reach Redis (REDIS_URL or REDIS_SENTINELS)"
    else:
        what = "cannot reach a dependency"
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return f"{what}: {detail}"
