"""What every gRPC service's factory does, once: open its database (migrated) and read replicas,
its Redis client when it has one, let the service build its parts on them, and wrap the result in
a GrpcService that owns every resource. A failure half way closes what was opened."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import aiopg
import grpc
import redis.asyncio as aioredis
from opentelemetry.sdk.trace import TracerProvider
from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from scout_kit.clock import Clock, SystemClock
from scout_kit.db import ReadPools, ReplicaSettings, open_database, open_read_pools
from scout_kit.grpc_server import GrpcService, build_grpc_service
from scout_kit.identity import TokenVerifier
from scout_kit.metrics import create_registry
from scout_kit.redis import RedisSettings, create_redis
from scout_kit.settings import CommonSettings, Env, Secret


class ServiceSettings(Protocol):
    """The settings every service has (each service's Settings class)."""

    @property
    def common(self) -> CommonSettings: ...

    @property
    def database_url(self) -> Secret: ...

    @property
    def db_pool_size(self) -> int: ...

    @property
    def replicas(self) -> ReplicaSettings: ...

    @property
    def jwt_public_key(self) -> Secret: ...


@dataclass(frozen=True)
class StoreSettings:
    """What a service holding data in PostgreSQL and Redis reads, the same way in each: the
    common settings, the database and its replicas, Redis, the identity tokens' public key."""

    common: CommonSettings
    database_url: Secret
    replicas: ReplicaSettings
    redis: RedisSettings
    redis_prefix: str
    jwt_public_key: Secret
    db_pool_size: int

    @classmethod
    def read(cls, env: Env, *, default_port: int, service: str) -> StoreSettings:
        public_key = env.pem("INTERNAL_JWT_PUBLIC_KEY")
        assert public_key is not None  # required: pem() raised otherwise
        return StoreSettings(
            common=CommonSettings.from_env(env, default_port=default_port, service=service),
            database_url=env.url("DATABASE_URL", ("postgresql", "postgres")),
            replicas=ReplicaSettings.from_env(env),
            redis=RedisSettings.from_env(env),
            redis_prefix=env.text("REDIS_PREFIX", "scout"),
            jwt_public_key=public_key,
            db_pool_size=env.integer("DB_POOL_SIZE", 10, minimum=1, maximum=200),
        )


@dataclass(frozen=True)
class Opened:
    """What the service's parts are built on."""

    name: str
    clock: Clock
    pool: aiopg.Pool
    reads: ReadPools
    # Closed with the service, after the gRPC server has stopped (last in, first out).
    resources: contextlib.AsyncExitStack
    registry: CollectorRegistry
    # This process's name among the service's replicas (in published events, logs).
    instance: str
    redis: aioredis.Redis | None = None


@dataclass(frozen=True)
class Built:
    """A service's servicers, and the components whose state its metrics expose."""

    # Adds the servicers to the server and answers their full service names.
    register: Callable[[grpc.aio.Server], list[str]]
    collectors: Sequence[Collector] = field(default_factory=tuple)


async def create_service(
    name: str,
    settings: ServiceSettings,
    *,
    schema: str,
    migrations: str,
    build: Callable[[Opened], Awaitable[Built]],
    redis: RedisSettings | None = None,
    address: str | None = None,
    clock: Clock | None = None,
    tracer_provider: TracerProvider | None = None,
) -> GrpcService:
    """The (not yet started) service `name`: its schema migrated from `migrations`, `build`'s
    servicers on a server with the shared interceptors, health and metrics."""
    clock = clock or SystemClock()
    resources = contextlib.AsyncExitStack()
    try:
        pool = await open_database(
            resources,
            settings.database_url.reveal(),
            pool_size=settings.db_pool_size,
            schema=schema,
            migrations=migrations,
        )
        reads = await open_read_pools(
            resources, pool, settings.replicas, pool_size=settings.db_pool_size
        )
        client = None
        if redis is not None:
            client = create_redis(redis)
            resources.push_async_callback(client.aclose)
        # Several replicas may share a process (tests): the exit stack's id tells them apart.
        host, pid = socket.gethostname(), os.getpid()
        instance = f"{name.replace('_', '-')}-{host}-{pid}-{id(resources):x}"
        registry = create_registry(name)
        opened = Opened(name, clock, pool, reads, resources, registry, instance, client)
        built = await build(opened)
        service = await build_grpc_service(
            name=name,
            common=settings.common,
            listen_addr=address,
            verifier=TokenVerifier(settings.jwt_public_key.reveal(), clock),
            register=built.register,
            resources=resources,
            tracer_provider=tracer_provider,
            registry=registry,
        )
        for collector in built.collectors:
            service.monitor(collector)
        service.monitor_database(pool)
        if client is not None:
            service.monitor_redis(client)
        return service
    except BaseException:
        await resources.aclose()
        raise
