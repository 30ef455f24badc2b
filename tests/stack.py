"""Starting the real services for tests: gRPC servers on port 0, gateways on real TLS sockets."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import grpc
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from auth_service.server import create_server as create_auth_server
from auth_service.settings import Settings as AuthSettings
from devstack.certs import GATEWAY, InternalCertificates
from gateway.app import create_app, create_ssl_context
from gateway.keys import KEY_CACHE, LISTENER, USAGE
from gateway.settings import Settings as GatewaySettings
from ingest_service.server import create_server as create_ingest_server
from ingest_service.settings import Settings as IngestSettings
from key_service.server import create_server as create_key_server
from key_service.settings import Settings as KeySettings
from scout_kit.clock import Clock
from scout_kit.grpc_client import create_channel
from scout_kit.grpc_server import GrpcService
from scout_kit.tls import CertificateFiles


@dataclass(frozen=True)
class Environment:
    """What one test run owns: its database, Redis key prefix, signing keys and certificates."""

    database_url: str
    redis_url: str
    redis_prefix: str
    jwt_private_pem: str
    jwt_public_pem: str
    ca_file: str
    cert_file: str
    key_file: str
    internal: InternalCertificates
    # Where the components find Redis, if not at redis_url (REDIS_SENTINELS... for failover tests).
    redis_variables: tuple[tuple[str, str], ...] = ()

    def redis_env(self) -> dict[str, str]:
        return dict(self.redis_variables) or {"REDIS_URL": self.redis_url}

    def internal_tls_env(self, component: str) -> dict[str, str]:
        """Mutual TLS, as in production: the internal CA and `component`'s certificate."""
        certificate = self.internal.of(component)
        return {
            "INTERNAL_TLS_CA_FILE": str(self.internal.ca_file),
            "INTERNAL_TLS_CERT_FILE": str(certificate.cert_file),
            "INTERNAL_TLS_KEY_FILE": str(certificate.key_file),
        }

    def internal_files(self, component: str) -> CertificateFiles:
        certificate = self.internal.of(component)
        return CertificateFiles(self.internal.ca_file, certificate.cert_file, certificate.key_file)

    def service_env(self, component: str = "keys", **overrides: str) -> dict[str, str]:
        return {
            "SCOUT_ENV": "development",
            "DATABASE_URL": self.database_url,
            **self.redis_env(),
            "REDIS_PREFIX": self.redis_prefix,
            "INTERNAL_JWT_PUBLIC_KEY": self.jwt_public_pem,
            "LISTEN_ADDR": "127.0.0.1:0",
            "LOG_FORMAT": "text",
            "SHUTDOWN_GRACE_SECONDS": "1",
            **self.internal_tls_env(component),
            **overrides,
        }

    def gateway_env(self, backends: Mapping[str, str], **overrides: str) -> dict[str, str]:
        return {
            "SCOUT_ENV": "development",
            "TLS_CERT_FILE": self.cert_file,
            "TLS_KEY_FILE": self.key_file,
            "HTTPS_PORT": "0",
            "PUBLIC_URL": "https://localhost",
            **self.redis_env(),
            "REDIS_PREFIX": self.redis_prefix,
            "INTERNAL_JWT_PRIVATE_KEY": self.jwt_private_pem,
            "LOG_FORMAT": "text",
            **self.internal_tls_env(GATEWAY),
            **backends,
            **overrides,
        }

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def service_channel(self, port: int, component: str = GATEWAY) -> grpc.aio.Channel:
        """A channel to a service on this machine, presenting `component`'s certificate."""
        return create_channel(f"127.0.0.1:{port}", self.internal_files(component).load())


@dataclass
class Gateway:
    app: web.Application
    runner: web.AppRunner
    url: str

    @property
    def key_cache(self) -> Any:
        return self.app[KEY_CACHE]

    @property
    def listener(self) -> Any:
        return self.app[LISTENER]

    @property
    def usage(self) -> Any:
        return self.app[USAGE]


@dataclass
class Stack:
    env: Environment
    auth: GrpcService
    keys: GrpcService
    ingest: GrpcService
    gateways: list[Gateway] = field(default_factory=list)

    @property
    def backends(self) -> dict[str, str]:
        return {
            "AUTH_SERVICE_ADDR": f"127.0.0.1:{self.auth.port}",
            "KEY_SERVICE_ADDR": f"127.0.0.1:{self.keys.port}",
            "INGEST_SERVICE_ADDR": f"127.0.0.1:{self.ingest.port}",
        }

    @property
    def gateway(self) -> Gateway:
        return self.gateways[0]


async def start_gateway(
    env: Environment,
    backends: Mapping[str, str],
    *,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
    **overrides: str,
) -> Gateway:
    settings = GatewaySettings.from_env(env.gateway_env(backends, **overrides))
    app = create_app(settings, clock=clock, tracer_provider=tracer_provider)
    runner = web.AppRunner(app, shutdown_timeout=1.0, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=create_ssl_context(settings))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gateway = Gateway(app, runner, f"https://localhost:{port}")
    await app[LISTENER].subscribed.wait()
    return gateway


@contextlib.asynccontextmanager
async def running_stack(
    env: Environment,
    *,
    gateways: int = 1,
    clock: Clock | None = None,
    gateway_overrides: Mapping[str, str] | None = None,
    key_overrides: Mapping[str, str] | None = None,
    ingest_overrides: Mapping[str, str] | None = None,
    tracer_providers: Mapping[str, TracerProvider] | None = None,
    service_overrides: Mapping[str, str] | None = None,
) -> AsyncIterator[Stack]:
    """Every service and `gateways` gateways, over mutual TLS; `tracer_providers` maps
    "gateway", "auth", "keys" and "ingest" to the provider each one traces with;
    `service_overrides` apply to all three services."""
    tracing = dict(tracer_providers or {})
    common = dict(service_overrides or {})
    async with contextlib.AsyncExitStack() as stack:
        auth = await create_auth_server(
            AuthSettings.from_env(env.service_env("auth", **common)),
            clock=clock,
            tracer_provider=tracing.get("auth"),
        )
        keys = await create_key_server(
            KeySettings.from_env(env.service_env("keys", **(common | dict(key_overrides or {})))),
            clock=clock,
            tracer_provider=tracing.get("keys"),
        )
        ingest = await create_ingest_server(
            IngestSettings.from_env(
                env.service_env("ingest", **(common | dict(ingest_overrides or {})))
            ),
            clock=clock,
            tracer_provider=tracing.get("ingest"),
        )
        for service in (auth, keys, ingest):
            await service.start()
            stack.push_async_callback(service.stop, 0.5)
        result = Stack(env, auth, keys, ingest)
        for _ in range(gateways):
            gateway = await start_gateway(
                env,
                result.backends,
                clock=clock,
                tracer_provider=tracing.get("gateway"),
                **dict(gateway_overrides or {}),
            )
            stack.push_async_callback(gateway.runner.cleanup)
            result.gateways.append(gateway)
        yield result


def client_session(env: Environment, **kwargs: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=env.client_ssl()), **kwargs)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to 10 s) until `condition()` holds, for state another task changes."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polling plain state, there is no event
            await asyncio.sleep(0.01)
