"""The whole local system in one run: data stores, seed, every replica, readiness, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.binaries import require_programs
from devstack.certs import ensure_dev_certificates
from devstack.jwt_keys import ensure_jwt_keypair
from devstack.ports import PortPool
from devstack.postgres import PrivatePostgres, running_postgres, unprivileged_user
from devstack.processes import ChildExited, LogPrinter, Supervisor, describe_exit
from devstack.readiness import wait_grpc_serving, wait_https_healthy
from devstack.redis_server import PrivateRedis, running_redis
from devstack.report import Datastore, format_summary
from devstack.seed import CREDENTIALS_FILE, seed_demo
from devstack.topology import ReplicaCounts, SharedConfig, plan
from scout_admin.settings import Settings as AdminSettings

log = logging.getLogger("devstack")

DEFAULT_REDIS_PREFIX = "scout"


@dataclass(frozen=True)
class Options:
    counts: ReplicaCounts
    data_dir: Path
    rotate_demo_key: bool = False
    ready_timeout: float = 60.0
    stop_timeout: float = 15.0


async def all_of(*awaitables: Awaitable[None]) -> None:
    """Await them together; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for awaitable in awaitables:
                group.create_task(_as_coroutine(awaitable))
    except ExceptionGroup as failures:
        raise failures.exceptions[0] from None


async def _as_coroutine(awaitable: Awaitable[None]) -> None:
    await awaitable


async def first_to_finish(watched: Mapping[str, Awaitable[object]]) -> str:
    """The name of the first awaitable to finish; the others are cancelled."""
    tasks = {asyncio.ensure_future(awaitable): name for name, awaitable in watched.items()}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return tasks[next(iter(done))]


async def run_stack(options: Options, environ: Mapping[str, str], printer: LogPrinter) -> int:
    """Bring everything up, print how to use it, and run until a child stops (returns 1).
    Cancelling it (Ctrl-C) stops everything in order on the way out."""
    database_url = environ.get("DATABASE_URL", "").strip() or None
    redis_url = environ.get("REDIS_URL", "").strip() or None
    programs = require_programs(need_postgres=database_url is None, need_redis=redis_url is None)
    data_dir = options.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    certs = ensure_dev_certificates(data_dir / "tls")
    jwt_keys = ensure_jwt_keypair(data_dir / "jwt")
    ports = PortPool(options.counts.ports_needed + 2)
    postgres_port, redis_port = ports.take(), ports.take()

    async with contextlib.AsyncExitStack() as stack:
        postgres: PrivatePostgres | None = None
        if programs.postgres is not None:
            postgres = PrivatePostgres(
                programs.postgres, data_dir / "postgres", postgres_port, unprivileged_user()
            )
            database_url = await stack.enter_async_context(running_postgres(postgres))
        assert database_url is not None
        database = Datastore(
            database_url, postgres is not None, postgres.data_dir if postgres else None
        )

        redis_server: PrivateRedis | None = None
        if programs.redis_server is not None:
            redis_server = PrivateRedis(programs.redis_server, data_dir / "redis", redis_port)
            redis_url = await stack.enter_async_context(running_redis(redis_server))
        assert redis_url is not None
        redis = Datastore(
            redis_url, redis_server is not None, redis_server.directory if redis_server else None
        )

        redis_prefix = environ.get("REDIS_PREFIX", "").strip() or DEFAULT_REDIS_PREFIX
        admin_settings = AdminSettings.from_env(
            {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
        )
        credentials_file = data_dir / CREDENTIALS_FILE
        seed = await seed_demo(admin_settings, credentials_file, rotate_key=options.rotate_demo_key)

        shared = SharedConfig(
            database_url=database_url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            jwt_private_key_file=jwt_keys.private_key,
            jwt_public_key_file=jwt_keys.public_key,
            tls_cert_file=certs.server_cert,
            tls_key_file=certs.server_key,
            base_env=environ,
            text_logs=sys.stdout.isatty(),
            python=sys.executable,
        )
        topology = plan(options.counts, ports, shared)
        supervisor = Supervisor(printer)
        stack.push_async_callback(supervisor.stop_all, options.stop_timeout)

        try:
            log.info("starting %d service replicas", len(topology.services))
            services = await supervisor.start_wave(
                [replica.spec(shared.python) for replica in topology.services]
            )
            await all_of(
                *(
                    wait_grpc_serving(child, replica.address, options.ready_timeout)
                    for child, replica in zip(services, topology.services, strict=True)
                )
            )
            log.info("starting %d gateway replicas", len(topology.gateways))
            gateways = await supervisor.start_wave(
                [replica.spec(shared.python) for replica in topology.gateways]
            )
            await all_of(
                *(
                    wait_https_healthy(child, replica.url, certs.ca_cert, options.ready_timeout)
                    for child, replica in zip(gateways, topology.gateways, strict=True)
                )
            )
        except ChildExited as exc:
            log.error("%s; stopping everything", exc)
            return 1

        print(
            format_summary(
                topology,
                database=database,
                redis=redis,
                ca_file=certs.ca_cert,
                seed=seed,
                credentials_file=credentials_file,
            ),
            flush=True,
        )

        watched: dict[str, Awaitable[object]] = {"a replica": supervisor.first_exit()}
        if redis_server is not None:
            watched["private Redis"] = redis_server.wait_exit()
        if postgres is not None:
            watched["private PostgreSQL"] = postgres.wait_stopped()
        what = await first_to_finish(watched)
        if what == "a replica":
            stopped = next(c for c in supervisor.children if c.returncode is not None)
            assert stopped.returncode is not None
            what = f"{stopped.name} ({describe_exit(stopped.returncode)})"
        log.error("%s stopped unexpectedly; stopping everything", what)
        return 1
