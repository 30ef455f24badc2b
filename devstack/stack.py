"""The whole local system in one run: data stores, seed, every replica, readiness, supervision
and shutdown; or, when this checkout's stack already runs, where it is."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path

from devstack.binaries import LocalPrograms, require_programs
from devstack.certs import GATEWAY, ensure_dev_certificates, ensure_internal_certificates
from devstack.jwt_keys import ensure_jwt_keypair
from devstack.ports import PortPlan
from devstack.postgres import PrivatePostgres, running_postgres, unprivileged_user
from devstack.processes import Child, ChildExited, LogPrinter, Supervisor
from devstack.readiness import require_reachable, wait_grpc_serving, wait_https_healthy
from devstack.redis_server import PrivateRedis, running_redis
from devstack.report import Datastore, format_already_running, format_summary
from devstack.seed import CREDENTIALS_FILE, seed_demo
from devstack.state import (
    AlreadyRunning,
    StackState,
    load_state,
    save_state,
    single_instance,
    stop_leftover_children,
)
from devstack.topology import ReplicaCounts, SharedConfig, Topology, plan
from scout_admin.settings import Settings as AdminSettings

log = logging.getLogger("devstack")

DEFAULT_REDIS_PREFIX = "scout"
# The first gateway's HTTPS port unless the last run's is remembered; the next ones follow.
DEFAULT_HTTPS_PORT = 8443


@dataclass(frozen=True)
class Options:
    counts: ReplicaCounts
    data_dir: Path
    rotate_demo_key: bool = False
    ready_timeout: float = 60.0
    stop_timeout: float = 15.0
    # None: the remembered port, else 8443; 0: any free port (then remembered).
    https_port: int | None = None
    restart_delay: float = 1.0


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


def gateway_ports(options: Options, remembered: Mapping[str, int]) -> dict[str, int]:
    """The gateways' fixed HTTPS ports: consecutive from the asked, remembered or default one."""
    base = options.https_port
    if base is None:
        base = remembered.get("gateway-1/https", DEFAULT_HTTPS_PORT)
    if base == 0:
        return {}
    return {f"gateway-{i}/https": base + i - 1 for i in range(1, options.counts.gateways + 1)}


def admin_settings(database_url: str, redis_url: str, redis_prefix: str) -> AdminSettings:
    return AdminSettings.from_env(
        {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "REDIS_PREFIX": redis_prefix}
    )


async def run_stack(options: Options, environ: Mapping[str, str], printer: LogPrinter) -> int:
    """Bring everything up, print how to use it, and keep it running (a replica that stops is
    restarted) until cancelled (Ctrl-C), which stops everything in order; 1 when a private data
    store stops. When this data folder's stack already runs, say where it is instead."""
    data_dir = options.data_dir.resolve()
    try:
        with single_instance(data_dir):
            return await _run_owned(options, environ, printer, data_dir)
    except AlreadyRunning as running:
        return await report_running(options, running.state, data_dir)


async def report_running(options: Options, state: StackState, data_dir: Path) -> int:
    """The second `make run` on a checkout: the running stack's URLs and demo key (a new one
    with --rotate-demo-key), nothing started, nothing stopped."""
    seed = None
    if state.database_url:
        settings = admin_settings(state.database_url, state.redis_url, state.redis_prefix)
        seed = await seed_demo(
            settings, data_dir / CREDENTIALS_FILE, rotate_key=options.rotate_demo_key
        )
    print(
        format_already_running(
            state.pid,
            state.gateway_urls or ["https://localhost:?"],
            state.metrics_urls,
            ca_file=data_dir / "tls" / "dev-ca.pem",
            seed=seed,
            credentials_file=data_dir / CREDENTIALS_FILE,
        ),
        flush=True,
    )
    return 0


@dataclass
class _Datastores:
    database: Datastore
    redis: Datastore
    # What to watch: a private store that stops ends the run.
    watched: dict[str, Awaitable[object]]


async def _open_datastores(
    stack: contextlib.AsyncExitStack,
    programs: LocalPrograms,
    environ: Mapping[str, str],
    data_dir: Path,
    ports: PortPlan,
) -> _Datastores:
    database_url = environ.get("DATABASE_URL", "").strip() or None
    redis_url = environ.get("REDIS_URL", "").strip() or None
    watched: dict[str, Awaitable[object]] = {}
    postgres: PrivatePostgres | None = None
    if programs.postgres is not None:
        postgres = PrivatePostgres(
            programs.postgres, data_dir / "postgres", ports.take("postgres"), unprivileged_user()
        )
        database_url = await stack.enter_async_context(running_postgres(postgres))
        watched["private PostgreSQL"] = postgres.wait_stopped()
    redis_server: PrivateRedis | None = None
    if programs.redis_server is not None:
        redis_server = PrivateRedis(programs.redis_server, data_dir / "redis", ports.take("redis"))
        redis_url = await stack.enter_async_context(running_redis(redis_server))
        watched["private Redis"] = redis_server.wait_exit()
    assert database_url is not None and redis_url is not None
    await require_reachable(database_url, redis_url)
    return _Datastores(
        Datastore(database_url, postgres is not None, postgres.data_dir if postgres else None),
        Datastore(
            redis_url, redis_server is not None, redis_server.directory if redis_server else None
        ),
        watched,
    )


async def _run_owned(
    options: Options, environ: Mapping[str, str], printer: LogPrinter, data_dir: Path
) -> int:
    previous = load_state(data_dir)
    await asyncio.to_thread(stop_leftover_children, previous)
    programs = require_programs(
        need_postgres=not environ.get("DATABASE_URL", "").strip(),
        need_redis=not environ.get("REDIS_URL", "").strip(),
    )
    ports = PortPlan(previous.ports, fixed=gateway_ports(options, previous.ports))
    async with contextlib.AsyncExitStack() as stack:
        stores = await _open_datastores(stack, programs, environ, data_dir, ports)
        redis_prefix = environ.get("REDIS_PREFIX", "").strip() or DEFAULT_REDIS_PREFIX
        credentials_file = data_dir / CREDENTIALS_FILE
        seed = await seed_demo(
            admin_settings(stores.database.url, stores.redis.url, redis_prefix),
            credentials_file,
            rotate_key=options.rotate_demo_key,
        )
        shared = _shared_config(data_dir, stores, redis_prefix, environ)
        topology = plan(options.counts, ports, shared)
        state = StackState(
            pid=os.getpid(),
            gateway_urls=[g.url for g in topology.gateways],
            metrics_urls={r.name: r.metrics_url for r in topology.replicas},
            database_url=stores.database.url,
            redis_url=stores.redis.url,
            redis_prefix=redis_prefix,
            ports=ports.assigned,
        )
        save_state(data_dir, state)
        supervisor = Supervisor(
            printer,
            restart_delay=options.restart_delay,
            on_restart=lambda child: _remember_child(data_dir, state, child),
        )
        stack.push_async_callback(supervisor.stop_all, options.stop_timeout)
        ca_file = data_dir / "tls" / "dev-ca.pem"
        if not await _start_replicas(supervisor, topology, shared, ca_file, options):
            return 1
        _remember_children(data_dir, state, supervisor)
        print(
            format_summary(
                topology,
                database=stores.database,
                redis=stores.redis,
                ca_file=ca_file,
                seed=seed,
                credentials_file=credentials_file,
            ),
            flush=True,
        )
        what = await first_to_finish({"supervisor": supervisor.supervise(), **stores.watched})
        log.error("%s stopped unexpectedly; stopping everything", what)
        return 1


def _shared_config(
    data_dir: Path, stores: _Datastores, redis_prefix: str, environ: Mapping[str, str]
) -> SharedConfig:
    """The development CA, internal certificates and signing keys (made once, kept in the data
    folder) and where the data lives: what every replica is given."""
    certs = ensure_dev_certificates(data_dir / "tls")
    jwt_keys = ensure_jwt_keypair(data_dir / "jwt")
    return SharedConfig(
        database_url=stores.database.url,
        redis_url=stores.redis.url,
        redis_prefix=redis_prefix,
        jwt_private_key_file=jwt_keys.private_key,
        jwt_public_key_file=jwt_keys.public_key,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        internal=ensure_internal_certificates(data_dir / "tls" / "internal"),
        base_env=environ,
        text_logs=sys.stdout.isatty(),
        python=sys.executable,
    )


def _remember_children(data_dir: Path, state: StackState, supervisor: Supervisor) -> None:
    state.children = {child.name: child.pid for child in supervisor.children}
    save_state(data_dir, state)


def _remember_child(data_dir: Path, state: StackState, child: Child) -> None:
    state.children[child.name] = child.pid
    save_state(data_dir, state)


async def _start_replicas(
    supervisor: Supervisor,
    topology: Topology,
    shared: SharedConfig,
    ca_file: Path,
    options: Options,
) -> bool:
    """The services, then the gateways, each wave waited for until it serves. False (after
    logging why) when a replica exits during its start: a setting or a taken port."""
    probe_tls = shared.internal.material(GATEWAY)
    try:
        log.info("starting %d service replicas", len(topology.services))
        services = await supervisor.start_wave(
            [replica.spec(shared.python) for replica in topology.services]
        )
        await all_of(
            *(
                wait_grpc_serving(child, replica.address, probe_tls, options.ready_timeout)
                for child, replica in zip(services, topology.services, strict=True)
            )
        )
        log.info("starting %d gateway replicas", len(topology.gateways))
        gateways = await supervisor.start_wave(
            [replica.spec(shared.python) for replica in topology.gateways]
        )
        await all_of(
            *(
                wait_https_healthy(child, replica.url, ca_file, options.ready_timeout)
                for child, replica in zip(gateways, topology.gateways, strict=True)
            )
        )
    except ChildExited as exc:
        log.error("%s; stopping everything", exc)
        return False
    return True
