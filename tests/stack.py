"""Starting the real services for tests: gRPC servers on port 0, gateways on real TLS sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import redis.asyncio as aioredis
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider

from auth_service.server import create_server as create_auth_server
from auth_service.settings import Settings as AuthSettings
from devstack.certs import GATEWAY, InternalCertificates
from devstack.ports import free_ports
from gateway.app import create_app, create_ssl_context
from gateway.app_keys import KEY_CACHE, LISTENER, SECURITY_HEADERS, USAGE
from gateway.runner import GatewayRunner
from gateway.settings import Settings as GatewaySettings
from ingest_service.server import create_server as create_ingest_server
from ingest_service.settings import Settings as IngestSettings
from key_service.server import create_server as create_key_server
from key_service.settings import Settings as KeySettings
from scout_kit.clock import Clock
from scout_kit.grpc_client import create_channel
from scout_kit.grpc_server import GrpcService
from scout_kit.tls import CertificateFiles

ROOT = Path(__file__).resolve().parent.parent


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
    runner = GatewayRunner(
        app, problem_headers=app[SECURITY_HEADERS], shutdown_timeout=1.0, access_log=None
    )
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=create_ssl_context(settings))
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    gateway = Gateway(app, runner, f"https://localhost:{port}")
    await app[LISTENER].subscribed.wait()
    await eventually(leased(gateway))  # the first PONG
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


def leased(gateway: Gateway) -> Callable[[], bool]:
    """Whether `gateway` holds its cache lease (and so answers from its key cache)."""
    return lambda: bool(gateway.key_cache.trusted)


def client_session(env: Environment, **kwargs: Any) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=env.client_ssl()), **kwargs)


class HeldCalls:
    """A gRPC stub whose `method` calls are counted and held until `release` is set, either
    before the call is made or, with `answer_first`, once its answer arrived (an answer that was
    true when it was read and may be stale when it is used); every other method passes."""

    def __init__(
        self, stub: Any, method: str, release: asyncio.Event, *, answer_first: bool = False
    ) -> None:
        self._stub = stub
        self._method = method
        self._answer_first = answer_first
        self.release = release
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return self._held if name == self._method else getattr(self._stub, name)

    async def _held(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        call = getattr(self._stub, self._method)
        if self._answer_first:
            answer = await call(*args, **kwargs)
            await self.release.wait()
            return answer
        await self.release.wait()
        return await call(*args, **kwargs)


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to 10 s) until `condition()` holds, for state another task changes."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 - polling plain state, there is no event
            await asyncio.sleep(0.01)


async def kill_client(control: aioredis.Redis, name_prefix: str) -> int:
    """CLIENT KILL ID every connection whose name starts with `name_prefix` (never TYPE: other
    test runs share this Redis). Returns how many were killed."""
    clients = await control.client_list()
    ids = [c["id"] for c in clients if str(c.get("name", "")).startswith(name_prefix)]
    for client_id in ids:
        await control.execute_command("CLIENT", "KILL", "ID", client_id)
    return len(ids)


class StallingProxy:
    """A TCP proxy in front of Redis whose open connections can be made to stop forwarding
    without closing (a half-open connection); connections made later are forwarded."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._stalled: list[asyncio.Event] = []
        self._writers: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def __aenter__(self) -> StallingProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self._server.wait_closed()

    def stall(self) -> None:
        """Stop forwarding, both ways, on every connection open now."""
        for forwarding in self._stalled:
            forwarding.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._writers += [writer, up_writer]
        forwarding = asyncio.Event()
        forwarding.set()
        self._stalled.append(forwarding)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink, forwarding))
            self._tasks.add(task)

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, forwarding: asyncio.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while data := await source.read(65536):
                await forwarding.wait()
                sink.write(data)
                await sink.drain()
        sink.close()


@dataclass
class GatewayProcess:
    """A real `python -m gateway` replica."""

    process: asyncio.subprocess.Process
    url: str

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def connection_name(self) -> str:
        """The start of its Redis connections' names (gateway.invalidation.gateway_instance)."""
        return f"gateway-{socket.gethostname()}-{self.pid}-"


@contextlib.asynccontextmanager
async def gateway_processes(
    env: Environment, backends: Mapping[str, str], count: int, **overrides: str
) -> AsyncIterator[list[GatewayProcess]]:
    """`count` gateway processes, each ready and holding its cache lease; stopped with SIGTERM
    (after a SIGCONT, in case a test left one stopped), killed if that takes too long."""
    started: list[GatewayProcess] = []
    try:
        for port in free_ports(count):
            settings = env.gateway_env(
                backends, LISTEN_HOST="127.0.0.1", HTTPS_PORT=str(port), **overrides
            )
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateway", env={**os.environ, **settings}, cwd=ROOT,
                stdin=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            started.append(GatewayProcess(process, f"https://localhost:{port}"))
        async with client_session(env) as http:
            for gateway in started:
                await _until_leased(http, gateway)
        yield started
    finally:
        for gateway in started:
            if gateway.process.returncode is None:
                gateway.process.send_signal(signal.SIGCONT)
                gateway.process.send_signal(signal.SIGTERM)
        for gateway in started:
            try:
                await asyncio.wait_for(gateway.process.wait(), 15)
            except TimeoutError:
                gateway.process.kill()
                await gateway.process.wait()


async def _until_leased(http: aiohttp.ClientSession, gateway: GatewayProcess) -> None:
    async with asyncio.timeout(30):
        while True:
            if gateway.process.returncode is not None:
                raise RuntimeError(f"gateway exited with {gateway.process.returncode}")
            with contextlib.suppress(aiohttp.ClientError):
                async with http.get(f"{gateway.url}/readyz") as response:
                    if (await response.json()).get("key_cache") == "trusted":
                        return
            await asyncio.sleep(0.05)
