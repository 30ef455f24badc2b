"""Reads that may lag go to a streaming standby only while it is provably fresh enough; a
multi-host DSN finds the read-write server. A real primary and standby, on loopback."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import psycopg2
import pytest

from scout_kit.db import ReadPools, ReplicaSettings, close_pool, create_pool, cursor
from scout_kit.settings import Env, SettingsError
from tests.postgres_standby import Pair, one, pause_replay, primary_and_standby, until_replayed

MAX_LAG = 10.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def pair() -> AsyncIterator[Pair]:
    async with primary_and_standby() as started:
        yield started


async def test_lagging_reads_use_the_standby_only_while_it_is_fresh(pair: Pair) -> None:
    primary = await create_pool(pair.primary.url, maxsize=2)
    standby = await create_pool(pair.standby.url, minsize=0, maxsize=2)
    clock = Clock()
    reads = ReadPools(primary, [standby], MAX_LAG, clock)
    try:
        async with cursor(primary) as cur:
            await cur.execute("CREATE TABLE t (n integer); INSERT INTO t VALUES (1)")
        await until_replayed(primary, standby)
        served = await reads.for_lagging_read()
        assert served is standby
        assert await one(served, "SELECT pg_is_in_recovery()") is True
        assert await one(served, "SELECT count(*) FROM t") == 1

        # Replay stops; the primary moves on. Within the bound the standby still serves...
        await pause_replay(standby)
        async with cursor(primary) as cur:
            await cur.execute("INSERT INTO t VALUES (2)")
        clock.now += MAX_LAG * 0.6  # a check runs: the standby is behind
        assert await reads.for_lagging_read() is standby
        assert await one(standby, "SELECT count(*) FROM t") == 1  # stale, by less than MAX_LAG
        # ...and past it, the primary does.
        clock.now += MAX_LAG * 0.5
        assert await reads.for_lagging_read() is primary
        assert await one(primary, "SELECT count(*) FROM t") == 2

        await one(standby, "SELECT pg_wal_replay_resume()::text")
        await until_replayed(primary, standby)
        clock.now += MAX_LAG
        assert await reads.for_lagging_read() is standby  # caught up again
        assert reads.served == {"replica": 3, "primary": 1}

        await pair.standby.stop()
        clock.now += MAX_LAG
        assert await reads.for_lagging_read() is primary  # unreachable: the primary serves
    finally:
        await close_pool(standby)
        await close_pool(primary)


async def test_a_multi_host_dsn_skips_the_standby_and_follows_a_promotion(pair: Pair) -> None:
    hosts = f"127.0.0.1:{pair.standby.port},127.0.0.1:{pair.primary.port}"
    dsn = f"postgresql://postgres@{hosts}/scout?target_session_attrs=read-write&connect_timeout=5"
    pool = await create_pool(dsn, maxsize=2)
    try:
        assert await one(pool, "SELECT inet_server_port()") == pair.primary.port
        assert await one(pool, "SELECT pg_is_in_recovery()") is False
        await pair.primary.stop()
        await pair.promote()
        # The pool's connection to the old primary is gone; the next ones go to the promoted
        # standby, with no restart (a statement in flight at that moment fails).
        async with asyncio.timeout(30):
            while True:
                try:
                    port = await one(pool, "SELECT inet_server_port()")
                except psycopg2.Error:  # connections to the stopped server fail
                    await asyncio.sleep(0.1)
                    continue
                if port == pair.standby.port:
                    break
        assert await one(pool, "SELECT pg_is_in_recovery()") is False
    finally:
        await close_pool(pool)


def test_replica_urls_are_validated_and_hidden(tmp_path: Any) -> None:
    settings = ReplicaSettings.from_env(
        Env(
            {
                "DATABASE_REPLICA_URLS": "postgresql://u:hunter2@r1/db  postgresql://u@r2/db",
                "DATABASE_REPLICA_MAX_LAG_SECONDS": "2.5",
            }
        )
    )
    assert [url.reveal() for url in settings.urls] == [
        "postgresql://u:hunter2@r1/db",
        "postgresql://u@r2/db",
    ]
    assert settings.max_lag_seconds == 2.5
    assert "hunter2" not in repr(settings)
    assert ReplicaSettings.from_env(Env({})).urls == ()
    for name, value in (
        ("DATABASE_REPLICA_URLS", "mysql://r1/db"),
        ("DATABASE_REPLICA_MAX_LAG_SECONDS", "0"),
    ):
        with pytest.raises(SettingsError, match=name):
            ReplicaSettings.from_env(Env({name: value}))
