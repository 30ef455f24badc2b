"""Redis: one client per service, and a key space so runs and deployments never collide."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff


def create_redis(url: str, *, reconnect: bool = True, name: str | None = None) -> aioredis.Redis:
    """A client with short timeouts: a down Redis must fail a call fast, not hang it.

    `reconnect=False` is for subscriptions whose owner must see every disconnection: redis-py
    otherwise reconnects and resubscribes silently, and messages published in the gap are lost
    without anyone knowing. `name` is the connections' CLIENT SETNAME, to tell them apart in
    CLIENT LIST."""
    if reconnect:
        return aioredis.Redis.from_url(
            url,
            socket_timeout=2.0,
            socket_connect_timeout=2.0,
            health_check_interval=10,
            decode_responses=False,
            client_name=name,
        )
    return aioredis.Redis.from_url(
        url,
        socket_timeout=2.0,
        socket_connect_timeout=2.0,
        health_check_interval=10,
        decode_responses=False,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
    )


@dataclass(frozen=True)
class Keyspace:
    """Every Redis key and channel a service uses, under one prefix (REDIS_PREFIX)."""

    prefix: str

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    def channel(self, name: str) -> str:
        return self.key("events", name)
