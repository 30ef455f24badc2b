"""A private PostgreSQL for `make run`: initialised once in the data folder, started on a free
loopback port, stopped with `pg_ctl stop -m fast` (so the next run finds its data again).

PostgreSQL refuses to run as root. When the orchestrator is root, initdb and pg_ctl run as an
unprivileged system user (`postgres` if it exists, else `nobody`) that owns the data folder.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import shutil
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2

from devstack.binaries import PostgresPrograms
from devstack.ports import LOOPBACK

log = logging.getLogger("devstack")

SUPERUSER = "postgres"
DATABASE = "scout"
_UNPRIVILEGED_USERS = ("postgres", "nobody")


class PostgresError(Exception):
    """initdb, pg_ctl or creating the database failed; the message carries their output."""


@dataclass(frozen=True)
class RunAs:
    """The system user PostgreSQL's programs run as when we are root."""

    name: str
    uid: int
    gid: int


def unprivileged_user(
    euid: int | None = None, candidates: Sequence[str] = _UNPRIVILEGED_USERS
) -> RunAs | None:
    """None when not running as root (programs run as ourselves); else the first existing
    candidate user."""
    if (os.geteuid() if euid is None else euid) != 0:
        return None
    for name in candidates:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    raise PostgresError(
        "running as root, and PostgreSQL refuses to run as root: create a `postgres` system user "
        "(installing the postgresql package does) or run `make run` as a normal user."
    )


def chown_tree(path: Path, run_as: RunAs) -> None:
    """Give `path` and everything under it to `run_as` (skipped when it already owns the top)."""
    stat = path.stat()
    if (stat.st_uid, stat.st_gid) == (run_as.uid, run_as.gid):
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, run_as.uid, run_as.gid)
        for name in [*dirs, *files]:
            os.lchown(os.path.join(root, name), run_as.uid, run_as.gid)


async def run_program(
    argv: Sequence[str | Path], *, run_as: RunAs | None, cwd: Path, time_limit: float = 120.0
) -> tuple[int, str]:
    """Run a PostgreSQL program to completion (as `run_as` if given): (exit code, output)."""
    command = [str(arg) for arg in argv]
    extra: dict[str, object] = {}
    if run_as is not None:
        setpriv = shutil.which("setpriv")
        if setpriv is not None:
            # Changing user in the child (Popen's user=) forces a plain fork(), which runs
            # gRPC's fork handlers in a process that has gRPC threads (our readiness checks)
            # and can crash the child before it execs. setpriv changes user after exec.
            command = [
                setpriv, f"--reuid={run_as.uid}", f"--regid={run_as.gid}", "--clear-groups",
                "--", *command,
            ]  # fmt: skip
        else:
            extra = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        process_group=0,  # a Ctrl-C on the terminal must not reach PostgreSQL before us
        **extra,  # type: ignore[arg-type]
    )
    try:
        async with asyncio.timeout(time_limit):  # not wait_for: see scout_kit.tasks
            output, _ = await process.communicate()
    except BaseException:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode("utf-8", "replace")


class PrivatePostgres:
    """One PostgreSQL cluster in `directory/data`, its log in `directory/postgresql.log`."""

    def __init__(
        self, programs: PostgresPrograms, directory: Path, port: int, run_as: RunAs | None
    ) -> None:
        self.programs = programs
        self.directory = directory
        self.data_dir = directory / "data"
        self.log_file = directory / "postgresql.log"
        self.port = port
        self.run_as = run_as

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@{LOOPBACK}:{self.port}/{DATABASE}"

    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").is_file()

    async def _run(self, *argv: str | Path, what: str) -> str:
        code, output = await run_program(argv, run_as=self.run_as, cwd=self.directory)
        if code != 0:
            hint = ""
            if self.run_as is not None and "ermission denied" in output:
                hint = (
                    f"\n(the {self.run_as.name} user must be able to reach {self.directory}; "
                    "use --data-dir somewhere it can, or run as a normal user)"
                )
            raise PostgresError(f"{what} failed (exit code {code}):\n{output.strip()}{hint}")
        return output

    async def initialise(self) -> bool:
        """initdb once (trust authentication, reachable on loopback only). True if it ran.

        It writes into a temporary folder renamed at the end, so an interrupted initdb never
        leaves a half-made cluster behind."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.run_as is not None:
            chown_tree(self.directory, self.run_as)
        if self.initialised:
            return False
        staging = self.directory / "data.initdb"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("initialising a private PostgreSQL cluster in %s", self.data_dir)
        await self._run(
            self.programs.initdb,
            "--pgdata", staging,
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--no-locale",
            what="initdb",
        )  # fmt: skip
        shutil.rmtree(self.data_dir, ignore_errors=True)
        staging.rename(self.data_dir)
        return True

    async def is_running(self) -> bool:
        code, _ = await run_program(
            [self.programs.pg_ctl, "status", "--pgdata", self.data_dir],
            run_as=self.run_as,
            cwd=self.directory,
        )
        return code == 0

    async def start(self) -> None:
        if await self.is_running():
            # Left behind by an orchestrator that was killed: stop it, then start on our port.
            log.info("stopping a PostgreSQL left running by an earlier run")
            await self.stop()
        # No Unix socket (-k ''): its path could exceed the OS limit in a deep checkout.
        options = f"-p {self.port} -h {LOOPBACK} -k '' -c max_connections=300"
        await self._run(
            self.programs.pg_ctl, "start",
            "--pgdata", self.data_dir,
            "--log", self.log_file,
            "--wait", "--timeout", "60",
            "-o", options,
            what=f"pg_ctl start (see {self.log_file})",
        )  # fmt: skip

    async def stop(self) -> None:
        await self._run(
            self.programs.pg_ctl, "stop",
            "--pgdata", self.data_dir,
            "--mode", "fast",
            "--wait", "--timeout", "60",
            what="pg_ctl stop",
        )  # fmt: skip

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None

    async def wait_stopped(self, poll_seconds: float = 1.0) -> None:
        """Return once the server is no longer running (it crashed or someone stopped it)."""
        while True:
            pid = self.postmaster_pid()
            if pid is None:
                return
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            except PermissionError:
                pass  # alive, owned by another user
            await asyncio.sleep(poll_seconds)

    async def create_database(self) -> bool:
        """CREATE DATABASE scout unless it exists. True if it was created."""
        return await asyncio.to_thread(self._create_database)

    def _create_database(self) -> bool:
        conn = psycopg2.connect(
            host=LOOPBACK, port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=10
        )
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cur.fetchone() is not None:
                    return False
                cur.execute(f'CREATE DATABASE "{DATABASE}"')
                return True
        finally:
            conn.close()


@asynccontextmanager
async def running_postgres(postgres: PrivatePostgres) -> AsyncIterator[str]:
    """Initialise if needed, start, make the database; yield its URL; stop on the way out."""
    await postgres.initialise()
    try:
        await postgres.start()
        log.info("private PostgreSQL listening on %s:%d", LOOPBACK, postgres.port)
        if await postgres.create_database():
            log.info("created database %s", DATABASE)
        yield postgres.url
    finally:
        # Also after a failed or interrupted start: the server may be half-way up.
        if await postgres.is_running():
            log.info("stopping private PostgreSQL")
            try:
                await postgres.stop()
            except PostgresError as exc:
                log.error("%s", exc)
