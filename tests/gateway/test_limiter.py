"""The unknown-key limiter counts before the key service is asked, across replicas, and a known
key gives its count back without leaving a key behind in Redis, even when the gateway is closed
while it is being given back."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiohttp import web

from gateway.app import _authentication_ctx, create_app, create_ssl_context
from gateway.app_keys import LISTENER, SECURITY_HEADERS
from gateway.limiter import Lookup, UnknownKeyLimiter
from gateway.runner import GatewayRunner
from gateway.settings import Settings as GatewaySettings
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.redis import Keyspace
from tests.gateway.keys_support import new_server, whoami_status
from tests.stack import Environment, client_session, running_stack


async def test_counts_are_global_and_given_back(admin: Admin, redis_prefix: str) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    keyspace = Keyspace(f"{redis_prefix}:{uuid.uuid4().hex[:8]}")
    replicas = [UnknownKeyLimiter(admin.redis, keyspace, clock, 3, 60) for _ in range(2)]
    lookups = await asyncio.gather(
        *(replicas[n % 2].count_lookup("198.51.100.9") for n in range(10))
    )
    allowed = [lookup for lookup in lookups if lookup.retry_after is None]
    assert len(allowed) == 3
    # The replicas that refused remember it without asking Redis again.
    assert all(replica.retry_after("198.51.100.9") for replica in replicas)
    # Giving back once the window's key has expired leaves no key without an expiry.
    counter = allowed[0].counter
    assert counter is not None
    assert await admin.redis.get(counter) in (b"10", "10")
    await replicas[0].known(allowed[0])
    assert await admin.redis.get(counter) in (b"9", "9")
    await admin.redis.delete(counter)
    await replicas[1].known(allowed[1])
    assert await admin.redis.ttl(counter) > 0


async def test_a_count_given_back_off_the_answers_path_lands_by_close(
    admin: Admin, redis_prefix: str
) -> None:
    clock = ManualClock(datetime(2030, 1, 1, tzinfo=UTC))
    keyspace = Keyspace(f"{redis_prefix}:{uuid.uuid4().hex[:8]}")
    limiter = UnknownKeyLimiter(admin.redis, keyspace, clock, 3, 60)
    lookups = [await limiter.count_lookup("198.51.100.10") for _ in range(2)]
    counter = lookups[0].counter
    assert counter is not None
    for lookup in lookups:
        limiter.give_back(lookup)  # returns at once; the DECRs run as tasks
    await limiter.close()
    assert await admin.redis.get(counter) in (b"0", "0")
    assert await admin.redis.ttl(counter) > 0
    # A lookup that was refused counted nothing of its own to give back.
    refused = [await limiter.count_lookup("198.51.100.10") for _ in range(5)][-1]
    assert refused.retry_after is not None
    limiter.give_back(refused)
    await limiter.close()
    assert await admin.redis.get(counter) in (b"5", "5")


async def test_closing_the_gateway_waits_for_the_counts_being_given_back(
    env: Environment, admin: Admin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A known key's count is given back after its answer, off the request's path. The give-back
    is held until the app has begun closing; the limiter's context must not finish (and Redis
    must not close) before that count has landed."""
    server = await new_server(admin)
    counting: list[str] = []
    landed: list[str] = []
    released = asyncio.Event()
    known = UnknownKeyLimiter.known

    async def held_known(self: UnknownKeyLimiter, lookup: Lookup) -> None:
        assert lookup.counter is not None
        counting.append(lookup.counter)
        await released.wait()
        await known(self, lookup)
        landed.append(lookup.counter)

    monkeypatch.setattr(UnknownKeyLimiter, "known", held_known)
    landed_when_closed: list[list[str]] = []

    async def release_when_closing(app: web.Application) -> AsyncIterator[None]:
        yield  # cleaned up just before the limiter's context
        released.set()

    async def after_the_limiter(app: web.Application) -> AsyncIterator[None]:
        yield  # cleaned up just after the limiter's context, before Redis closes
        landed_when_closed.append(list(landed))

    async with running_stack(env, gateways=0) as stack, client_session(env) as http:
        settings = GatewaySettings.from_env(env.gateway_env(stack.backends))
        app = create_app(settings)
        limiter_at = app.cleanup_ctx.index(_authentication_ctx)
        app.cleanup_ctx.insert(limiter_at + 1, release_when_closing)
        app.cleanup_ctx.insert(limiter_at, after_the_limiter)
        runner = GatewayRunner(
            app, problem_headers=app[SECURITY_HEADERS], shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=create_ssl_context(settings))
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            await app[LISTENER].subscribed.wait()
            assert await whoami_status(http, f"https://localhost:{port}", server.api_key) == 200
            assert len(counting) == 1  # given back after the answer, and still on its way
            assert await admin.redis.get(counting[0]) in (b"1", "1")
        finally:
            await runner.cleanup()
    assert landed_when_closed == [counting]
    assert await admin.redis.get(counting[0]) in (b"0", "0")
