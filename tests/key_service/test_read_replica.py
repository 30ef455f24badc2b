"""Access decisions read the primary even while a replica lags; activity lists may come from a
replica of bounded staleness. A real primary and streaming standby, replay paused on purpose."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime

from key_service.domain import key_status
from key_service.models import KeyStatus
from key_service.repository import PostgresKeyRepository
from scout_kit.db import ReadPools, close_pool, create_pool, migrate
from tests.postgres_standby import one, pause_replay, primary_and_standby, until_replayed


async def test_rotation_is_decided_on_the_primary_while_activity_may_lag(tmp_path: object) -> None:
    async with primary_and_standby() as pair:
        primary = await create_pool(pair.primary.url, maxsize=3)
        standby = await create_pool(pair.standby.url, minsize=0, maxsize=2)
        try:
            await migrate(primary, "keys", "key_service.migrations")
            reads = ReadPools(primary, [standby], max_lag=3600.0)
            repository = PostgresKeyRepository(primary, reads)
            account, now = str(uuid.uuid4()), datetime.now(UTC)
            old = hashlib.sha256(b"old key").digest()
            server = await repository.create_server(
                account_id=account, name="web-1", key_sha256=old, hint="old",
                actor="test", address="", now=now,
            )  # fmt: skip
            await until_replayed(primary, standby)
            assert [
                e.type for e in await repository.list_activity(account, server.id, None, 10, [])
            ] == ["key.created"]

            await pause_replay(standby)
            await repository.rotate_key(
                account_id=account, server_id=server.id,
                key_sha256=hashlib.sha256(b"new key").digest(), hint="new", actor="test",
                address="", now=now, grace_until=now,
            )  # fmt: skip
            # The replica has not seen the rotation; the decision does not ask it.
            assert key_status(await repository.find_key(old), now).status is KeyStatus.ROTATED
            events = await repository.list_activity(account, server.id, None, 10, [])
            assert [e.type for e in events] == ["key.created"]  # stale, within the bound
            assert reads.served == {"replica": 2}

            await one(standby, "SELECT pg_wal_replay_resume()::text")
            await until_replayed(primary, standby)
            events = await repository.list_activity(account, server.id, None, 10, [])
            assert next(e.type for e in events) == "key.rotated"
        finally:
            await close_pool(standby)
            await close_pool(primary)
