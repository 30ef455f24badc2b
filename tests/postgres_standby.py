"""A private PostgreSQL primary and a streaming standby (pg_basebackup) on loopback ports."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiopg
import pytest

from devstack.binaries import find_postgres
from devstack.ports import free_ports
from devstack.postgres import PrivatePostgres, chown_tree, run_program, unprivileged_user
from scout_kit.db import cursor


async def one(pool: aiopg.Pool, sql: str, params: Any = None) -> Any:
    async with cursor(pool) as cur:
        await cur.execute(sql, params)
        row = await cur.fetchone()
        return row[0]


async def until_replayed(primary: aiopg.Pool, standby: aiopg.Pool) -> None:
    """Poll (another process's state) until the standby has replayed the primary's WAL."""
    position = await one(primary, "SELECT pg_current_wal_lsn()::text")
    replayed = "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn"
    async with asyncio.timeout(30):
        while not await one(standby, replayed, (position,)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@dataclass
class Pair:
    primary: PrivatePostgres
    standby: PrivatePostgres

    async def promote(self) -> None:
        code, output = await run_program(
            [
                self.standby.programs.bin_dir / "pg_ctl", "promote",
                "--pgdata", self.standby.data_dir, "--wait",
            ],
            run_as=self.standby.run_as,
            cwd=self.standby.directory,
        )  # fmt: skip
        assert code == 0, output


@contextlib.asynccontextmanager
async def primary_and_standby() -> AsyncIterator[Pair]:
    programs = find_postgres()
    if programs is None or not (programs.bin_dir / "pg_basebackup").exists():
        pytest.fail("PostgreSQL's server programs (initdb, pg_ctl, pg_basebackup) are required")
    run_as = unprivileged_user()
    # Not under pytest's tmp_path: as root, PostgreSQL runs as another user, who must reach it.
    top = Path(tempfile.mkdtemp(prefix="scout-standby-"))
    primary_port, standby_port = free_ports(2)
    primary = PrivatePostgres(programs, top / "primary", primary_port, run_as)
    standby = PrivatePostgres(programs, top / "standby", standby_port, run_as)
    started: list[PrivatePostgres] = []
    try:
        if run_as is not None:
            chown_tree(top, run_as)
        await primary.initialise()
        await primary.start()
        started.append(primary)
        await primary.create_database()
        standby.directory.mkdir()
        if run_as is not None:
            chown_tree(standby.directory, run_as)
        # -R: standby.signal and primary_conninfo, so it starts as a streaming standby.
        code, output = await run_program(
            [
                programs.bin_dir / "pg_basebackup", "--pgdata", standby.data_dir,
                "--host", "127.0.0.1", "--port", str(primary_port), "--username", "postgres",
                "--wal-method", "stream", "--write-recovery-conf", "--checkpoint", "fast",
            ],
            run_as=run_as,
            cwd=standby.directory,
        )  # fmt: skip
        assert code == 0, output
        await standby.start()
        started.append(standby)
        yield Pair(primary, standby)
    finally:
        for server in reversed(started):
            if await server.is_running():
                await server.stop()
        shutil.rmtree(top, ignore_errors=True)


async def pause_replay(standby: aiopg.Pool) -> None:
    """Stop the standby applying WAL, and wait until it has (a pause is only requested at
    first: the startup process stops at its next check)."""
    await one(standby, "SELECT pg_wal_replay_pause()::text")
    async with asyncio.timeout(30):
        while await one(standby, "SELECT pg_get_wal_replay_pause_state()") != "paused":  # noqa: ASYNC110
            await asyncio.sleep(0.05)
