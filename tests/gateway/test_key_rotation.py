"""Rotation and revocation take effect on every gateway replica before the answer is sent."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis

from gateway.app_keys import BACKENDS
from scout_admin.commands import Admin, admin_actor
from scout_kit.clock import ManualClock
from tests.gateway.keys_support import new_server, rotate, whoami_status
from tests.stack import (
    Environment,
    Gateway,
    HeldCalls,
    client_session,
    eventually,
    kill_client,
    leased,
    running_stack,
)


async def test_rotated_key_is_refused_by_every_replica(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    async with running_stack(env, gateways=3) as stack, client_session(env) as http:
        for gateway in stack.gateways:  # warm every cache
            assert await whoami_status(http, gateway.url, server.api_key) == 200
            assert len(gateway.key_cache) == 1
        new_key = await rotate(admin, server)
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 401
            assert await whoami_status(http, gateway.url, new_key) == 200
        async with http.get(
            f"{stack.gateway.url}/api/v1/whoami", headers={"X-API-Key": server.api_key}
        ) as response:
            problem = await response.json()
        assert problem["type"].endswith("/api-key-rotated")
        # Neither a restart nor a file path that only the packaged agent has (curl users too).
        assert "SCOUTAPIKEY" in problem["detail"]
        assert "restart" not in problem["detail"] and "/" not in problem["detail"]


async def test_deleting_a_server_revokes_its_key_everywhere(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    async with running_stack(env, gateways=2) as stack, client_session(env) as http:
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 200
        await admin.keys.delete_server(server.account_id, server.server_id, actor=admin_actor())
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 401


async def test_no_acceptance_after_the_rotate_answer_under_load(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    loop = asyncio.get_running_loop()
    async with running_stack(env, gateways=2) as stack, client_session(env) as http:
        results: list[tuple[float, int]] = []
        stop = asyncio.Event()

        async def hammer(url: str) -> None:
            while not stop.is_set():
                sent = loop.time()
                results.append((sent, await whoami_status(http, url, server.api_key)))

        clients = [asyncio.create_task(hammer(g.url)) for g in stack.gateways for _ in range(3)]
        await asyncio.sleep(0.3)
        await rotate(admin, server)
        answered = loop.time()
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.gather(*clients)
    accepted_before = [s for t, s in results if t < answered and s == 200]
    after = [s for t, s in results if t > answered]
    assert accepted_before, "the old key worked before the rotation"
    assert after, "requests were sent after the rotation"
    assert after.count(200) == 0


async def test_killed_subscription_around_a_rotation(env: Environment, admin: Admin) -> None:
    server = await new_server(admin)
    async with running_stack(env, gateways=2) as stack, client_session(env) as http:
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 200
        control = aioredis.Redis.from_url(env.redis_url)
        try:
            for gateway in stack.gateways:
                # Only our gateways' subscriptions: other test runs share this Redis.
                assert await kill_client(control, gateway.listener.instance) == 1
            new_key = await rotate(admin, server)  # may reach no subscriber at all
            for gateway in stack.gateways:
                assert await whoami_status(http, gateway.url, server.api_key) == 401
            for gateway in stack.gateways:
                await asyncio.wait_for(gateway.listener.subscribed.wait(), 10)
                await eventually(leased(gateway))
                assert await whoami_status(http, gateway.url, new_key) == 200
                assert gateway.key_cache.trusted and len(gateway.key_cache) == 1
            generations = [g.key_cache.generation for g in stack.gateways]
            for gateway in stack.gateways:
                await kill_client(control, gateway.listener.instance)
            for gateway, before in zip(stack.gateways, generations, strict=True):
                # Losing the subscription flushes the cache; requests keep working meanwhile.
                await eventually(flushed_since(gateway, before))
                assert await whoami_status(http, gateway.url, new_key) == 200
        finally:
            await control.aclose()


def flushed_since(gateway: Gateway, generation: int) -> Callable[[], bool]:
    return lambda: bool(gateway.key_cache.generation != generation)


class _PausedValidation:
    """Lets a real ValidateKey answer arrive, then holds it until the test releases it."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub
        self.answered = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stub, name)

    async def ValidateKey(self, *args: Any, **kwargs: Any) -> Any:
        response = await self._stub.ValidateKey(*args, **kwargs)
        self.answered.set()
        await self.release.wait()
        return response


async def test_validation_in_flight_during_rotation_does_not_cache_the_dead_key(
    env: Environment, admin: Admin
) -> None:
    server = await new_server(admin)
    async with running_stack(env, gateways=1) as stack, client_session(env) as http:
        backends = stack.gateway.app[BACKENDS]
        paused = _PausedValidation(backends.keys)
        backends.keys = paused  # type: ignore[assignment]
        in_flight = asyncio.create_task(whoami_status(http, stack.gateway.url, server.api_key))
        await asyncio.wait_for(paused.answered.wait(), 10)  # VALID, read before the rotation
        await rotate(admin, server)  # the invalidation arrives while the answer is held
        paused.release.set()
        assert await in_flight == 200  # it was sent before the rotation answered
        digest = hashlib.sha256(server.api_key.encode()).digest()
        assert stack.gateway.key_cache.get(digest) is None
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 401


async def test_grace_window_keeps_the_old_key_until_it_expires(
    env: Environment, admin: Admin
) -> None:
    clock = ManualClock()
    server = await new_server(admin)
    async with running_stack(env, gateways=2, clock=clock) as stack, client_session(env) as http:
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 200
        rotated = await stack_rotate(stack, admin, server, grace=120, clock=clock)
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 200
            assert await whoami_status(http, gateway.url, rotated) == 200
        clock.advance(119)
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 200
        clock.advance(2)
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key) == 401
            assert await whoami_status(http, gateway.url, rotated) == 200


async def stack_rotate(
    stack: Any, admin: Admin, server: Any, *, grace: int, clock: ManualClock
) -> str:
    """Rotate with the stack's clock (the admin tool uses the system clock)."""
    from key_service.domain import KeyManager
    from key_service.events import RedisInvalidationPublisher
    from key_service.repository import PostgresKeyRepository

    publisher = RedisInvalidationPublisher(admin.redis, admin.keyspace, "test")
    manager = KeyManager(PostgresKeyRepository(admin.pool), publisher, clock)
    rotated = await manager.rotate_key(
        server.account_id, server.server_id, grace_seconds=grace, actor="admin:test"
    )
    return rotated.api_key


# Three unknown keys per address an hour, so a test reaches the limit in a few requests.
_THROTTLE_OF_THREE = {
    "UNKNOWN_KEY_LIMIT": "3",
    "UNKNOWN_KEY_WINDOW_SECONDS": "3600",
    "TRUSTED_PROXY_HOPS": "1",
}


def _own_addresses() -> tuple[dict[str, str], dict[str, str]]:
    """Headers for two client addresses of this test's own (through the trusted proxy header),
    so no other test's unknown keys count against them."""
    raw = uuid.uuid4().bytes
    return (
        {"X-Forwarded-For": f"10.{raw[0]}.{raw[1]}.{raw[2]}"},
        {"X-Forwarded-For": f"10.{raw[0]}.{raw[1]}.{(raw[2] + 1) % 256}"},
    )


async def test_a_parallel_burst_of_unknown_keys_makes_at_most_the_limit_of_lookups(
    env: Environment, admin: Admin
) -> None:
    """Counted before the key service is asked: thirty new keys at once on two replicas make
    three lookups, not thirty."""
    client, neighbour = _own_addresses()
    server = await new_server(admin)
    async with (
        running_stack(env, gateways=2, gateway_overrides=_THROTTLE_OF_THREE) as stack,
        client_session(env) as http,
    ):
        release = asyncio.Event()
        held = []
        for gateway in stack.gateways:
            backends = gateway.app[BACKENDS]
            held.append(HeldCalls(backends.keys, "ValidateKey", release))
            backends.keys = held[-1]  # type: ignore[assignment]
        burst = [
            asyncio.create_task(
                whoami_status(http, stack.gateways[n % 2].url, f"{n + 1:064x}", **client)
            )
            for n in range(30)
        ]
        # Every request has either asked the key service (and is held) or been answered.
        await eventually(lambda: sum(h.calls for h in held) + sum(t.done() for t in burst) == 30)
        release.set()
        statuses = await asyncio.gather(*burst)
        assert sum(h.calls for h in held) == 3
        assert sorted(statuses) == [401] * 3 + [429] * 27
        # A known key's lookup gives its count back: five uncached lookups of a working
        # agent's key leave the whole limit for the unknown keys after them.
        for _ in range(5):
            stack.gateway.key_cache.flush()
            assert await whoami_status(http, stack.gateway.url, server.api_key, **neighbour) == 200
        for n in range(3):
            unknown = f"{n + 100:064x}"
            assert await whoami_status(http, stack.gateway.url, unknown, **neighbour) == 401


async def test_a_key_seen_valid_is_never_throttled_when_the_cache_cannot_answer(
    env: Environment, admin: Admin
) -> None:
    """A burst of one working agent's requests that all miss the cache at once (its entry's TTL
    ended, the lease lapsed, the cache was flushed) is no burst of guesses: each request still
    asks the key service, none counts against its address, even one over the limit already."""
    client, _ = _own_addresses()
    server = await new_server(admin)
    async with (
        running_stack(env, gateways=1, gateway_overrides=_THROTTLE_OF_THREE) as stack,
        client_session(env) as http,
    ):
        assert await whoami_status(http, stack.gateway.url, server.api_key, **client) == 200
        statuses = [
            await whoami_status(http, stack.gateway.url, f"{n + 1:064x}", **client)
            for n in range(4)
        ]
        assert statuses == [401, 401, 401, 429]
        backends = stack.gateway.app[BACKENDS]
        held = HeldCalls(backends.keys, "ValidateKey", asyncio.Event())
        backends.keys = held  # type: ignore[assignment]
        burst = []
        for started in range(1, 31):
            # Each after a flush, so none can wait for another's validation: each asks.
            stack.gateway.key_cache.flush()
            burst.append(
                asyncio.create_task(
                    whoami_status(http, stack.gateway.url, server.api_key, **client)
                )
            )
            await eventually(lambda started=started: held.calls == started)  # type: ignore[misc]
        held.release.set()
        assert await asyncio.gather(*burst) == [200] * 30
        assert held.calls == 30
        # The address is still over the limit for keys this replica has not seen valid.
        assert await whoami_status(http, stack.gateway.url, "e" * 64, **client) == 429
        # A key that has since been regenerated is refused as such, not throttled.
        old_key = server.api_key
        await rotate(admin, server)
        stack.gateway.key_cache.flush()
        async with http.get(
            f"{stack.gateway.url}/api/v1/whoami", headers={"X-API-Key": old_key, **client}
        ) as response:
            assert response.status == 401
            assert (await response.json())["type"].endswith("api-key-rotated")


async def test_concurrent_misses_of_one_key_make_one_validation(
    env: Environment, admin: Admin
) -> None:
    """Thirty requests of one key that miss the cache at once (its entry expired, a flush) wait
    for the first one's validation instead of thirty calls to the key service."""
    server = await new_server(admin)
    async with running_stack(env, gateways=1) as stack, client_session(env) as http:
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 200
        cache = stack.gateway.key_cache
        cache.flush()
        backends = stack.gateway.app[BACKENDS]
        held = HeldCalls(backends.keys, "ValidateKey", asyncio.Event())
        backends.keys = held  # type: ignore[assignment]
        joined = cache.stats.joined
        burst = [
            asyncio.create_task(whoami_status(http, stack.gateway.url, server.api_key))
            for _ in range(30)
        ]
        await eventually(lambda: cache.stats.joined - joined == 29)
        held.release.set()
        assert await asyncio.gather(*burst) == [200] * 30
        assert held.calls == 1
        # Stored as a cache entry would be: the next request asks nothing.
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 200
        assert held.calls == 1


async def test_a_request_after_a_rotation_never_waits_for_a_validation_that_predates_it(
    env: Environment, admin: Admin
) -> None:
    """A validation of the old key read before the rotation is still in flight when the rotate
    call returns: a request with that key afterwards is refused at once, not given the stale
    answer it could have waited for."""
    server = await new_server(admin)
    async with running_stack(env, gateways=1) as stack, client_session(env) as http:
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 200
        stack.gateway.key_cache.flush()
        backends = stack.gateway.app[BACKENDS]
        held = HeldCalls(backends.keys, "ValidateKey", asyncio.Event(), answer_first=True)
        backends.keys = held  # type: ignore[assignment]
        before = asyncio.create_task(whoami_status(http, stack.gateway.url, server.api_key))
        await eventually(lambda: held.calls == 1)
        await rotate(admin, server)
        # Answered while the earlier validation is still held.
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 401
        held.release.set()
        # The request that raced the rotation may pass.
        assert await before == 200
        assert await whoami_status(http, stack.gateway.url, server.api_key) == 401


async def test_unknown_keys_are_throttled_across_replicas(env: Environment, admin: Admin) -> None:
    client, neighbour = _own_addresses()
    server = await new_server(admin)
    async with (
        running_stack(env, gateways=2, gateway_overrides=_THROTTLE_OF_THREE) as stack,
        client_session(env) as http,
    ):
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key, **client) == 200
        statuses = []
        for attempt in range(5):
            url = stack.gateways[attempt % 2].url
            statuses.append(await whoami_status(http, url, f"{attempt:064x}", **client))
        assert statuses == [401, 401, 401, 429, 429]
        async with http.get(
            f"{stack.gateways[1].url}/api/v1/whoami", headers={"X-API-Key": "f" * 64, **client}
        ) as response:
            assert response.status == 429
            assert int(response.headers["Retry-After"]) >= 1
            assert response.content_type == "application/problem+json"
        # Another address is not affected.
        assert await whoami_status(http, stack.gateway.url, "e" * 64, **neighbour) == 401
        # An agent already known to the gateways is not held back by its neighbours' noise.
        for gateway in stack.gateways:
            assert await whoami_status(http, gateway.url, server.api_key, **client) == 200
