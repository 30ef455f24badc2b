"""A real Redis primary, its replica and three Sentinels on loopback, for failover tests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as aioredis
import redis.exceptions

from devstack.ports import LOOPBACK, free_ports

MASTER_NAME = "scout"
DOWN_AFTER_MS = 1000
# Every wait here is bounded; a failover on loopback takes a few seconds.
WAIT_SECONDS = 30.0


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is required for this test (Debian package redis-server)")
    return binary


@dataclass
class Node:
    port: int
    directory: Path
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        log = (self.directory / "out.log").open("ab")
        self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def kill(self) -> None:
        """SIGKILL: the process dies without a word, as a crashed machine would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(host=LOOPBACK, port=self.port, socket_timeout=2.0)


@dataclass
class SentinelGroup:
    """Two data nodes (`nodes[0]` starts as primary) and three Sentinels with quorum 2."""

    nodes: list[Node]
    sentinels: list[Node]

    @property
    def env(self) -> dict[str, str]:
        """How a component is pointed at this group."""
        return {
            "REDIS_SENTINELS": ",".join(f"{LOOPBACK}:{s.port}" for s in self.sentinels),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }

    async def master_port(self) -> int:
        """The master's port as the Sentinels agree on it (all of them)."""
        ports = set()
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                address = await client.execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER_NAME
                )
            finally:
                await client.aclose()
            ports.add(int(address[1]))
        if len(ports) != 1:
            raise AssertionError(f"Sentinels disagree on the master: {ports}")
        return ports.pop()

    def node(self, port: int) -> Node:
        return next(node for node in self.nodes if node.port == port)

    async def wait_ready(self) -> None:
        """Until the replica is in sync and every Sentinel knows both data nodes and its peers."""
        replica = self.nodes[1]
        await _until(lambda: _linked(replica), "the replica to sync")
        for sentinel in self.sentinels:
            await _until(functools.partial(_sentinel_sees_all, sentinel, replica.port), "Sentinels")

    async def failover(self) -> int:
        """SENTINEL FAILOVER (the old master stays up and becomes a replica); the new port."""
        old = await self.master_port()
        client = self.sentinels[0].client()
        try:
            await client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        finally:
            await client.aclose()
        return await self.wait_new_master(old, demoted=True)

    async def kill_master(self) -> int:
        """SIGKILL the master; the Sentinels agree it is down and promote the replica."""
        old = await self.master_port()
        self.node(old).kill()
        return await self.wait_new_master(old, demoted=False)

    async def wait_new_master(self, old: int, *, demoted: bool) -> int:
        new = next(node.port for node in self.nodes if node.port != old)

        async def switched() -> bool:
            try:
                if await self.master_port() != new:
                    return False
            except (AssertionError, redis.exceptions.RedisError):
                return False
            if not await _role_is(self.node(new), "master"):
                return False
            return not demoted or await _linked(self.node(old))

        await _until(switched, "the failover to complete")
        return new


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `condition` (another process's state: there is no event to wait on)."""
    try:
        async with asyncio.timeout(WAIT_SECONDS):
            while True:
                with contextlib.suppress(redis.exceptions.RedisError, OSError):
                    if await condition():
                        return
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT_SECONDS:.0f}s waiting for {what}") from None


async def _role_is(node: Node, role: str) -> bool:
    client = node.client()
    try:
        reply = await client.execute_command("ROLE")
    finally:
        await client.aclose()
    return bool(reply[0] in (role, role.encode()))


async def _linked(node: Node) -> bool:
    """A replica whose link to its master is up."""
    client = node.client()
    try:
        info = await client.info("replication")
    finally:
        await client.aclose()
    return info.get("role") == "slave" and info.get("master_link_status") == "up"


async def _sentinel_sees_all(sentinel: Node, replica_port: int) -> bool:
    client = sentinel.client()
    try:
        master = cast(dict[str, Any], await client.sentinel_master(MASTER_NAME))
        replicas = await client.sentinel_slaves(MASTER_NAME)
    finally:
        await client.aclose()
    ports = {int(replica["port"]) for replica in replicas}
    return int(master["num-other-sentinels"]) == 2 and replica_port in ports


@contextlib.asynccontextmanager
async def sentinel_group(directory: Path) -> AsyncIterator[SentinelGroup]:
    binary = redis_binary()
    primary_port, replica_port, *sentinel_ports = free_ports(5)

    def data_node(port: int, name: str, *extra: str) -> Node:
        path = directory / name
        return Node(
            port,
            path,
            [
                binary, "--port", str(port), "--bind", LOOPBACK, "--save", "",
                "--appendonly", "no", "--dir", str(path), *extra,
            ],
        )  # fmt: skip

    nodes = [
        data_node(primary_port, "primary"),
        data_node(replica_port, "replica", "--replicaof", LOOPBACK, str(primary_port)),
    ]
    sentinels = []
    for index, port in enumerate(sentinel_ports):
        path = directory / f"sentinel-{index}"
        path.mkdir(parents=True)
        config = path / "sentinel.conf"  # Sentinel rewrites it: it must be its own file
        config.write_text(
            f"port {port}\nbind {LOOPBACK}\ndir {path}\n"
            f"sentinel monitor {MASTER_NAME} {LOOPBACK} {primary_port} 2\n"
            f"sentinel down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER_NAME} 10000\n"
            f"sentinel parallel-syncs {MASTER_NAME} 1\n"
        )
        sentinels.append(Node(port, path, [binary, str(config), "--sentinel"]))
    group = SentinelGroup(nodes, sentinels)
    try:
        for node in (*nodes, *sentinels):
            node.start()
        await group.wait_ready()
        yield group
    finally:
        for node in (*sentinels, *nodes):
            node.stop()
