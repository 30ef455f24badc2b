"""The unknown-key limiter counts before the key service is asked, across replicas, and a known
key gives its count back without leaving a key behind in Redis."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from gateway.limiter import UnknownKeyLimiter
from scout_admin.commands import Admin
from scout_kit.clock import ManualClock
from scout_kit.redis import Keyspace


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
