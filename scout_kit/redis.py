"""Redis: where it is (one URL or a Sentinel-watched master), one client per use, a key space."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
import redis.exceptions
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

from scout_kit.settings import Env, Secret, SettingsError

SOCKET_TIMEOUT = 2.0
# WAIT must answer well within the socket timeout, or the wait itself would look like an outage.
MAX_REPLICA_TIMEOUT_MS = 1500


class NotReplicated(redis.exceptions.ConnectionError):
    """A write that must survive a failover was not confirmed by enough replicas in time: the
    caller fails closed (UNAVAILABLE / 503) and the client retries."""


@dataclass(frozen=True)
class RedisSettings:
    """Where Redis is, read the same way by every component.

    Either `REDIS_URL` (one server), or `REDIS_SENTINELS` (host:port,host:port,...) with
    `REDIS_SENTINEL_MASTER` (the monitored master's name): the client asks the Sentinels for the
    master before each new connection, so it follows a failover by itself. `REDIS_PASSWORD`
    (or `REDIS_PASSWORD_FILE`) authenticates to the master, `REDIS_SENTINEL_PASSWORD(_FILE)` to
    the Sentinels. `REDIS_MIN_REPLICAS` writes (sessions) wait for that many replicas, up to
    `REDIS_REPLICA_TIMEOUT_MS`, so a confirmed session outlives a failover."""

    url: Secret | None
    sentinels: tuple[tuple[str, int], ...]
    master: str | None
    password: Secret | None
    sentinel_password: Secret | None
    db: int
    min_replicas: int
    replica_timeout_ms: int

    @classmethod
    def from_env(cls, env: Env) -> RedisSettings:
        sentinels = env.optional("REDIS_SENTINELS")
        has_url = bool(env.optional("REDIS_URL") or env.optional("REDIS_URL_FILE"))
        if sentinels and has_url:
            raise SettingsError("set only one of REDIS_URL and REDIS_SENTINELS")
        replicas = env.integer("REDIS_MIN_REPLICAS", 0, minimum=0, maximum=16)
        timeout_ms = env.integer(
            "REDIS_REPLICA_TIMEOUT_MS", 500, minimum=1, maximum=MAX_REPLICA_TIMEOUT_MS
        )
        if not sentinels:
            for name in ("REDIS_SENTINEL_MASTER", "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD"):
                if env.optional(name) or env.optional(f"{name}_FILE"):
                    raise SettingsError(
                        f"{name} applies only with REDIS_SENTINELS (with REDIS_URL, put the "
                        "password in the URL)"
                    )
            if env.optional("REDIS_DB"):
                raise SettingsError("REDIS_DB applies only with REDIS_SENTINELS")
            if not has_url:
                raise SettingsError(
                    "REDIS_URL (or REDIS_SENTINELS and REDIS_SENTINEL_MASTER) is required but "
                    "not set"
                )
            return cls(
                url=env.url("REDIS_URL", ("redis", "rediss", "unix")),
                sentinels=(),
                master=None,
                password=None,
                sentinel_password=None,
                db=0,
                min_replicas=replicas,
                replica_timeout_ms=timeout_ms,
            )
        return cls(
            url=None,
            sentinels=_sentinel_addresses(sentinels),
            master=env.text("REDIS_SENTINEL_MASTER"),
            password=_secret(env, "REDIS_PASSWORD"),
            sentinel_password=_secret(env, "REDIS_SENTINEL_PASSWORD"),
            db=env.integer("REDIS_DB", 0, minimum=0, maximum=15),
            min_replicas=replicas,
            replica_timeout_ms=timeout_ms,
        )

    def describe(self) -> str:
        """For logs: where Redis is, without any password."""
        if self.url is not None:
            return "REDIS_URL"
        addresses = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"master {self.master!r} via Sentinels {addresses}"


def _sentinel_addresses(raw: str) -> tuple[tuple[str, int], ...]:
    addresses = []
    for item in raw.split(","):
        host, sep, port = item.strip().rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
            raise SettingsError(f"REDIS_SENTINELS must be host:port,host:port,..., got {raw!r}")
        addresses.append((host, int(port)))
    if len(set(addresses)) != len(addresses):
        raise SettingsError("REDIS_SENTINELS lists a Sentinel twice")
    return tuple(addresses)


def _secret(env: Env, name: str) -> Secret | None:
    value = env.from_file(name) or env.optional(name)
    return Secret(value) if value is not None else None


class _SentinelMaster(aioredis.Redis):
    """The master's client; closing it also closes the connections to the Sentinels."""

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        try:
            await super().aclose(close_connection_pool)
        finally:
            pool = cast(SentinelConnectionPool, self.connection_pool)
            await pool.sentinel_manager.aclose()


def create_redis(
    settings: RedisSettings, *, reconnect: bool = True, name: str | None = None
) -> aioredis.Redis:
    """A client with short timeouts: a down Redis must fail a call fast, not hang it.

    `reconnect=False` is for subscriptions whose owner must see every disconnection: redis-py
    otherwise reconnects and resubscribes silently, and messages published in the gap are lost
    without anyone knowing. With Sentinels, a failover closes the old master's connections
    (Sentinel kills its clients when it demotes it, and a demoted master answers writes with
    READONLY, which redis-py turns into a disconnection), so a subscription sees it like any
    other loss and resubscribes on the new master. `name` is the connections' CLIENT SETNAME,
    to tell them apart in CLIENT LIST."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "health_check_interval": 10,
        "decode_responses": False,
        "client_name": name,
    }
    if not reconnect:
        options["retry"] = Retry(NoBackoff(), 0)
    if settings.url is not None:
        return aioredis.Redis.from_url(settings.url.reveal(), **options)
    sentinel_options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }
    if settings.sentinel_password is not None:
        sentinel_options["password"] = settings.sentinel_password.reveal()
    sentinel = Sentinel(list(settings.sentinels), sentinel_kwargs=sentinel_options)
    assert settings.master is not None
    if settings.password is not None:
        options["password"] = settings.password.reveal()
    master: _SentinelMaster = sentinel.master_for(
        settings.master, redis_class=_SentinelMaster, db=settings.db, **options
    )
    return master


@dataclass(frozen=True)
class ReplicaWait:
    """Writes that must outlive a failover wait until `replicas` replicas hold them."""

    replicas: int = 0
    timeout_ms: int = 500

    @classmethod
    def of(cls, settings: RedisSettings) -> ReplicaWait:
        return cls(settings.min_replicas, settings.replica_timeout_ms)

    async def confirm(self, client: aioredis.Redis, barrier_key: str) -> None:
        """Return once `replicas` replicas hold everything this process has written so far;
        NotReplicated otherwise.

        WAIT counts replicas that reached the offset of its own connection's last write, and a
        pool may hand each command a different connection: so a small write on the same
        connection first (one pipeline). Replication is ordered, so a replica that holds it
        holds every write completed before it."""
        if self.replicas == 0:
            return
        async with client.pipeline(transaction=False) as pipe:
            pipe.incr(barrier_key)
            pipe.wait(self.replicas, self.timeout_ms)
            _, acknowledged = await pipe.execute()
        if int(acknowledged) < self.replicas:
            raise NotReplicated(
                f"{acknowledged} of {self.replicas} Redis replicas confirmed the write "
                f"within {self.timeout_ms} ms"
            )


@dataclass(frozen=True)
class Keyspace:
    """Every Redis key and channel a service uses, under one prefix (REDIS_PREFIX)."""

    prefix: str

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def channel(self, name: str) -> str:
        return self.key("events", name)
