"""`make run`'s orchestrator: ports, per-replica environments, program discovery, dev secrets,
seeding, child supervision and what it prints; one end-to-end run against the test databases."""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import psycopg2
import pytest
import redis

from auth_service.settings import Settings as AuthSettings
from devstack.__main__ import build_parser, options_from
from devstack.binaries import MissingBinaries, find_postgres, require_programs
from devstack.certs import ensure_dev_certificates, ensure_internal_certificates
from devstack.jwt_keys import ensure_jwt_keypair
from devstack.ports import PortPlan, PortTaken, free_ports
from devstack.postgres import PostgresError, unprivileged_user
from devstack.processes import ChildExited, LogPrinter, ProcessSpec, Supervisor
from devstack.report import Datastore, format_summary, metric_curl, redact
from devstack.seed import (
    DEMO_EMAIL,
    DemoCredentials,
    SeedResult,
    load_credentials,
    save_credentials,
    seed_demo,
)
from devstack.topology import ReplicaCounts, SharedConfig, Topology, grpc_target, plan
from gateway.settings import Settings as GatewaySettings
from ingest_service.settings import Settings as IngestSettings
from key_service.models import key_digest
from key_service.settings import Settings as KeySettings
from scout_kit.clock import SystemClock
from scout_kit.identity import TokenIssuer, TokenVerifier, service_identity
from tests.admin_support import admin_settings
from tests.stack import Environment

ADMIN_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
SETTINGS_FROM_ENV: dict[str, Callable[[Mapping[str, str]], object]] = {
    "auth_service": AuthSettings.from_env,
    "key_service": KeySettings.from_env,
    "ingest_service": IngestSettings.from_env,
    "gateway": GatewaySettings.from_env,
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- ports -----------------------------------------------------------------------------------


def test_free_ports_are_distinct_and_bindable() -> None:
    ports = free_ports(12)
    assert len(set(ports)) == 12
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_ports_are_fixed_remembered_or_free_and_always_distinct() -> None:
    remembered_free, fixed_free, taken_port = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", taken_port))
        taken.listen()
        plan = PortPlan(
            {"a": remembered_free, "b": taken_port, "c": fixed_free},
            fixed={"g": fixed_free},
        )
        assert plan.take("g") == fixed_free
        assert plan.take("a") == remembered_free  # remembered and still free
        assert plan.take("b") not in (taken_port, remembered_free, fixed_free)  # taken: a new one
        assert plan.take("c") not in (fixed_free, remembered_free)  # never twice
        assert plan.take("a") == remembered_free
        assert len(set(plan.assigned.values())) == 4
        with pytest.raises(PortTaken, match=f"port {taken_port} "):
            PortPlan(fixed={"gateway-1/https": taken_port}).take("gateway-1/https")


# -- replicas and their environment ----------------------------------------------------------


@pytest.fixture
def shared(tmp_path: Path) -> SharedConfig:
    certs = ensure_dev_certificates(tmp_path / "tls")
    keys = ensure_jwt_keypair(tmp_path / "jwt")
    return SharedConfig(
        database_url="postgresql://postgres@127.0.0.1:5999/scout",
        redis_url="redis://127.0.0.1:6999/0",
        redis_prefix="scout",
        jwt_private_key_file=keys.private_key,
        jwt_public_key_file=keys.public_key,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        internal=ensure_internal_certificates(tmp_path / "tls" / "internal"),
        # What a developer's shell might hold: none of it may reach a replica unchanged.
        base_env={
            "PATH": "/usr/bin",
            "LISTEN_ADDR": "0.0.0.0:1",
            "METRICS_ADDR": "0.0.0.0:9100",
            "INTERNAL_JWT_PRIVATE_KEY": "-----BEGIN leaked",
            "DATABASE_URL": "postgresql://elsewhere/db",
            "LOG_LEVEL": "debug",
        },
        text_logs=False,
    )


def test_grpc_target_lists_every_replica_for_round_robin() -> None:
    assert grpc_target([5001]) == "127.0.0.1:5001"
    assert grpc_target([5001, 5002]) == "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    with pytest.raises(ValueError, match="at least one"):
        grpc_target([])


def test_plan_gives_every_replica_its_own_port_and_a_valid_environment(
    shared: SharedConfig,
) -> None:
    counts = ReplicaCounts(gateways=3, auth=1, keys=2, ingest=2)
    ports = PortPlan()
    topology = plan(counts, ports, shared)

    assert [r.name for r in topology.replicas] == [
        "auth-1", "keys-1", "keys-2", "ingest-1", "ingest-2",
        "gateway-1", "gateway-2", "gateway-3",
    ]  # fmt: skip
    every = [r.port for r in topology.replicas] + [g.http_port for g in topology.gateways]
    every += [r.metrics_port for r in topology.replicas]
    assert len(set(every)) == len(every) == len(ports.assigned) == 5 + 3 * 2 + 8

    for replica in topology.replicas:
        # The real settings code accepts what each replica is given.
        settings = SETTINGS_FROM_ENV[replica.module](replica.env)
        assert replica.env["SCOUT_ENV"] == "development"
        assert replica.env["LOG_LEVEL"] == "debug"  # the developer's choice passes through
        assert replica.env["LOG_FORMAT"] == "json"
        # Decided per replica, never the shell's value.
        assert replica.env["METRICS_ADDR"] == f"127.0.0.1:{replica.metrics_port}"
        assert "INTERNAL_JWT_PRIVATE_KEY" not in replica.env
        component = "gateway" if replica.is_gateway else replica.name.split("-")[0]
        assert replica.env["INTERNAL_TLS_CERT_FILE"] == str(shared.internal.of(component).cert_file)
        if replica.is_gateway:
            assert isinstance(settings, GatewaySettings)
            assert settings.https_port == replica.port
            assert settings.http_port == replica.http_port
            assert settings.public_url == f"https://localhost:{replica.port}"
            assert "DATABASE_URL" not in replica.env
        else:
            assert replica.env["LISTEN_ADDR"] == f"127.0.0.1:{replica.port}"
            assert replica.env["DATABASE_URL"] == shared.database_url
            assert "INTERNAL_JWT_PRIVATE_KEY_FILE" not in replica.env

    ingest = [r for r in topology.services if r.module == "ingest_service"]
    assert all("REDIS_URL" not in r.env for r in ingest)
    gateway = GatewaySettings.from_env(topology.gateways[0].env)
    assert gateway.ingest_service_addr == "ipv4:" + ",".join(r.address for r in ingest)
    assert gateway.auth_service_addr == topology.services[0].address


def test_replica_spec_runs_the_service_module(shared: SharedConfig) -> None:
    topology = plan(ReplicaCounts(), PortPlan(), shared)
    spec = topology.gateways[0].spec("/venv/bin/python")
    assert spec.argv == ("/venv/bin/python", "-m", "gateway")
    assert spec.name == "gateway-1"


def test_command_line_counts_and_defaults() -> None:
    options = options_from(build_parser().parse_args(["--gateways", "3", "--ingest", "2"]))
    assert options.counts == ReplicaCounts(gateways=3, auth=1, keys=1, ingest=2)
    assert options.data_dir == Path(".dev")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--gateways", "0"])


# -- finding PostgreSQL and Redis ------------------------------------------------------------


def test_missing_programs_name_what_to_install() -> None:
    with pytest.raises(MissingBinaries) as caught:
        require_programs(need_postgres=True, need_redis=True, search_path="", patterns=())
    message = str(caught.value)
    assert "apt-get install postgresql" in message
    assert "apt-get install redis-server" in message
    assert "DATABASE_URL" in message
    assert "REDIS_URL" in message
    assert "docker compose up" in message
    assert len(caught.value.problems) == 2


def test_nothing_is_required_when_urls_are_given() -> None:
    found = require_programs(need_postgres=False, need_redis=False, search_path="", patterns=())
    assert found.postgres is None
    assert found.redis_server is None


def _fake_programs(directory: Path, *names: str) -> None:
    directory.mkdir(parents=True)
    for name in names:
        program = directory / name
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)


def test_postgres_programs_come_from_one_installation(tmp_path: Path) -> None:
    _fake_programs(tmp_path / "pg" / "14" / "bin", "initdb", "pg_ctl", "postgres")
    _fake_programs(tmp_path / "pg" / "16" / "bin", "initdb", "pg_ctl", "postgres")
    _fake_programs(tmp_path / "pg" / "17" / "bin", "initdb")  # incomplete: skipped
    found = find_postgres("", patterns=[str(tmp_path / "pg" / "*" / "bin")])
    assert found is not None
    assert found.initdb == tmp_path / "pg" / "16" / "bin" / "initdb"


def test_initdb_on_path_is_followed_to_its_installation(tmp_path: Path) -> None:
    real = tmp_path / "lib" / "15" / "bin"
    _fake_programs(real, "initdb", "pg_ctl", "postgres")
    on_path = tmp_path / "bin"
    on_path.mkdir()
    (on_path / "initdb").symlink_to(real / "initdb")  # like /usr/local/bin/initdb
    found = find_postgres(str(on_path), patterns=())
    assert found is not None
    assert found.pg_ctl == real / "pg_ctl"


def test_root_runs_postgres_as_an_unprivileged_user() -> None:
    assert unprivileged_user(euid=1000) is None
    with pytest.raises(PostgresError, match="refuses to run as root"):
        unprivileged_user(euid=0, candidates=("no-such-user-" + uuid.uuid4().hex[:8],))
    run_as = unprivileged_user(euid=0, candidates=("root",))
    assert run_as is not None
    assert run_as.uid == 0


# -- development secrets and credentials -----------------------------------------------------


def test_jwt_keypair_is_made_once_private_and_usable(tmp_path: Path) -> None:
    first = ensure_jwt_keypair(tmp_path / "jwt")
    private_text = first.private_key.read_text()
    assert mode(first.private_key) == 0o600
    second = ensure_jwt_keypair(tmp_path / "jwt")
    assert second.private_key.read_text() == private_text

    clock = SystemClock()
    token = TokenIssuer(private_text, clock).token_for(service_identity("gateway"))
    verified = TokenVerifier(first.public_key.read_text(), clock).verify(token)
    assert verified.subject == "gateway"


def test_credentials_round_trip_in_an_owner_only_file(tmp_path: Path) -> None:
    path = tmp_path / "demo-credentials.json"
    assert load_credentials(path) is None
    saved = DemoCredentials(DEMO_EMAIL, "pw", "id-1", "demo-server", "ab" * 32)
    save_credentials(path, saved)
    assert mode(path) == 0o600
    assert load_credentials(path) == saved
    path.write_text("not json")
    assert load_credentials(path) is None


@pytest.fixture
def fresh_database() -> Iterator[str]:
    name = f"scout_devstack_{uuid.uuid4().hex[:12]}"
    conn = psycopg2.connect(ADMIN_POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    yield ADMIN_POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    conn = psycopg2.connect(ADMIN_POSTGRES_URL)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@pytest.fixture
def devstack_prefix() -> Iterator[str]:
    """A Redis key prefix of this test's own, like its database: what devstack writes is removed."""
    prefix = f"scout_devstack_{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(TEST_REDIS_URL)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


def _sha256_in_database(database_url: str, api_key: str) -> tuple[str, str | None] | None:
    conn = psycopg2.connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT server_id::text, ended_reason FROM keys.api_keys WHERE key_sha256 = %s",
                (key_digest(api_key),),
            )
            row = cur.fetchone()
    finally:
        conn.close()
    return None if row is None else (row[0], row[1])


async def test_seeding_creates_the_demo_once_and_rotates_on_request(
    tmp_path: Path, env: Environment, fresh_database: str, devstack_prefix: str
) -> None:
    settings = admin_settings(env, fresh_database, redis_prefix=devstack_prefix)
    path = tmp_path / "demo-credentials.json"

    first = await seed_demo(settings, path)
    assert first.created_user
    assert first.created_server
    assert "keys.0001_init.sql" in first.applied_migrations
    creds = first.credentials
    assert creds.email == DEMO_EMAIL
    assert creds.password is not None
    assert len(creds.password) >= 20
    assert creds.api_key is not None
    assert re.fullmatch(r"[0-9a-f]{64}", creds.api_key)
    assert mode(path) == 0o600
    # The database has the key's hash only; the dev convenience file has the key.
    assert _sha256_in_database(fresh_database, creds.api_key) == (creds.server_id, None)

    again = await seed_demo(settings, path)
    assert not again.created_user
    assert not again.created_server
    assert not again.rotated_key
    assert again.applied_migrations == []
    assert again.credentials == creds

    rotated = await seed_demo(settings, path, rotate_key=True)
    assert rotated.rotated_key
    assert rotated.credentials.api_key not in (None, creds.api_key)
    assert rotated.credentials.server_id == creds.server_id
    assert _sha256_in_database(fresh_database, creds.api_key) == (creds.server_id, "rotated")
    assert load_credentials(path) == rotated.credentials

    # A key the file no longer matches (rotated elsewhere) is not printed as if it worked.
    save_credentials(path, creds)
    stale = await seed_demo(settings, path)
    assert stale.credentials.api_key is None
    assert stale.credentials.password == creds.password


# -- child processes -------------------------------------------------------------------------


class CountingOutput(io.StringIO):
    """Output that sets `seen` once `text` has been written `count` times."""

    def __init__(self, text: str, count: int) -> None:
        super().__init__()
        self.seen = asyncio.Event()
        self._text = text
        self._count = count

    def write(self, s: str) -> int:
        written = super().write(s)
        if self.getvalue().count(self._text) >= self._count:
            self.seen.set()
        return written


def _python(name: str, code: str) -> ProcessSpec:
    return ProcessSpec(name, (sys.executable, "-c", code), dict(os.environ))


async def test_supervisor_prefixes_output_and_reports_the_first_exit() -> None:
    out = io.StringIO()
    supervisor = Supervisor(LogPrinter(out))
    children = await supervisor.start_wave(
        [
            _python("quick-1", "import sys; print('hello'); sys.exit(3)"),
            _python("slow-1", "import time; time.sleep(30)"),
        ]
    )
    stopped = await asyncio.wait_for(supervisor.first_exit(), 10)
    assert stopped.name == "quick-1"
    assert stopped.returncode == 3
    with pytest.raises(ChildExited, match=r"quick-1 exited unexpectedly \(exit code 3\)"):
        stopped.ensure_running()
    assert "quick-1    | hello\n" in out.getvalue()
    await supervisor.stop_all(kill_after=5)
    assert children[1].returncode == -signal.SIGTERM
    assert supervisor.children == []


async def test_stopping_sends_sigterm_then_kills() -> None:
    out = CountingOutput("| up", 2)
    supervisor = Supervisor(LogPrinter(out))
    polite, stubborn = await supervisor.start_wave(
        [
            _python("polite", "import time; print('up', flush=True); time.sleep(30)"),
            _python(
                "stubborn",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('up', flush=True); time.sleep(30)",
            ),
        ]
    )
    await asyncio.wait_for(out.seen.wait(), 10)  # both are past installing their handlers
    await supervisor.stop_all(kill_after=0.5)
    assert polite.returncode == -signal.SIGTERM
    assert stubborn.returncode == -signal.SIGKILL


# -- what is printed -------------------------------------------------------------------------


def test_redact_hides_passwords() -> None:
    assert (
        redact("postgresql://scout:hunter2@db:5432/scout") == "postgresql://scout:***@db:5432/scout"
    )
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_the_printed_curl_sends_valid_json_with_the_current_time(tmp_path: Path) -> None:
    command = metric_curl("https://localhost:8443", "ab" * 32, tmp_path / "dev-ca.pem")
    assert f"--cacert {tmp_path / 'dev-ca.pem'}" in command
    assert "X-API-Key: " + "ab" * 32 in command
    body_argument = command.rsplit("-d ", 1)[1]
    # Let a real shell expand it, as it will when pasted.
    body = subprocess.run(
        ["bash", "-c", f"printf '%s' {body_argument}"], capture_output=True, text=True, check=True
    ).stdout
    sample = json.loads(body)["samples"][0]
    assert abs(sample["ts"] - time.time()) < 60
    assert sample["metrics"] == {"cpu.percent": 12.5}


def test_summary_names_every_replica_the_ca_and_the_demo(
    shared: SharedConfig, tmp_path: Path
) -> None:
    counts = ReplicaCounts(gateways=2, ingest=2)
    topology: Topology = plan(counts, PortPlan(), shared)
    creds = DemoCredentials(DEMO_EMAIL, "s3cret-password", "sid", "demo-server", "cd" * 32)
    text = format_summary(
        topology,
        database=Datastore("postgresql://postgres@127.0.0.1:5999/scout", True, tmp_path / "pg"),
        redis=Datastore("redis://:pw@127.0.0.1:6999/0", False),
        ca_file=tmp_path / "tls" / "dev-ca.pem",
        seed=SeedResult(creds, [], False, False, False),
        credentials_file=tmp_path / "demo-credentials.json",
    )
    for replica in topology.replicas:
        assert f"{replica.name} " in text
        assert replica.url in text
        assert f"metrics {replica.metrics_url}" in text
    assert f"export SSL_CERT_FILE={tmp_path / 'tls' / 'dev-ca.pem'}" in text
    assert "s3cret-password" in text
    assert "cd" * 32 in text
    assert "redis://:***@127.0.0.1:6999/0" in text
    assert "psql -h 127.0.0.1 -p 5999 -U postgres scout" in text
    assert f"Dashboard:   {topology.gateways[0].url}/  (sign in with the demo user below)" in text


# -- end to end ------------------------------------------------------------------------------


def _read_lines(stream: object, sink: queue.Queue[str]) -> None:
    for line in stream:  # type: ignore[attr-defined]
        sink.put(line)


@pytest.mark.slow
def test_make_run_posts_a_metric_and_stops_cleanly_on_ctrl_c(
    tmp_path: Path, fresh_database: str, devstack_prefix: str
) -> None:
    """`python -m devstack` with two ingest replicas: the printed key posts a metric that lands
    in PostgreSQL, and SIGINT stops every child and exits 0."""
    env = dict(os.environ) | {
        "DATABASE_URL": fresh_database,
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_PREFIX": devstack_prefix,
        "NO_COLOR": "1",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack", "--data-dir", str(tmp_path), "--ingest", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
    reader.start()
    output: list[str] = []
    try:
        deadline = time.monotonic() + 45
        while not any(line.startswith("Post a metric:") for line in output):
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "".join(output)
            try:
                output.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
        for _ in range(3):  # the curl command itself
            output.append(lines.get(timeout=5))
        text = "".join(output)
        assert "ingest-2 " in text
        curl = text.split("Post a metric:\n", 1)[1].strip()
        result = subprocess.run(
            ["bash", "-c", curl + " --silent --show-error --fail-with-body"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert json.loads(result.stdout) == {"accepted": 1}
        dashboard = re.search(r"^Dashboard: +(https://\S+)", text, re.MULTILINE)
        assert dashboard, text
        page = subprocess.run(
            ["bash", "-c", curl.split(" -X POST")[0] + f" --silent --fail {dashboard.group(1)}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert page.returncode == 0 and "<title>Server Scout</title>" in page.stdout

        conn = psycopg2.connect(fresh_database)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT name, value FROM ingest.sample_values")
                assert cur.fetchall() == [("cpu.percent", 12.5)]
        finally:
            conn.close()

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        assert process.stdout is not None
        process.stdout.close()
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert "devstack   | stopped" in "".join(rest)


def test_an_unknown_demo_key_still_prints_a_curl_and_how_to_get_a_key(
    shared: SharedConfig, tmp_path: Path
) -> None:
    topology = plan(ReplicaCounts(), PortPlan(), shared)
    creds = DemoCredentials(DEMO_EMAIL, None, "sid", "demo-server", None)
    text = format_summary(
        topology,
        database=Datastore("postgresql://postgres@127.0.0.1:5999/scout", False),
        redis=Datastore("redis://127.0.0.1:6999/0", False),
        ca_file=tmp_path / "dev-ca.pem",
        seed=SeedResult(creds, [], False, False, False),
        credentials_file=tmp_path / "demo-credentials.json",
    )
    assert "--rotate-demo-key" in text
    assert "Post a metric:" in text and "X-API-Key: <API key>" in text


# -- `make run` across restarts (real processes) ---------------------------------------------


class DevstackRun:
    """`python -m devstack` in the background, its output read line by line."""

    def __init__(self, args: list[str], env: Mapping[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "devstack", *args],
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(
            target=_read_lines, args=(self.process.stdout, self.lines), daemon=True
        )
        self._reader.start()

    def wait_for(self, text: str, within: float = 60) -> str:
        """The first line (from now on) that contains `text`."""
        deadline = time.monotonic() + within
        while True:
            assert time.monotonic() < deadline, f"no {text!r} in:\n" + "".join(self.output)
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                assert self.process.poll() is None, "exited:\n" + "".join(self.output)
                continue
            self.output.append(line)
            if text in line:
                return line

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=40)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._reader.join(timeout=5)
            assert self.process.stdout is not None
            self.process.stdout.close()


def _post_with_printed_curl(output: str) -> subprocess.CompletedProcess[str]:
    curl = output.split("Post a metric:\n", 1)[1].split("\n\n", 1)[0].strip()
    return subprocess.run(
        ["bash", "-c", curl + " --silent --show-error --fail-with-body"],
        capture_output=True,
        text=True,
        timeout=20,
    )


@pytest.mark.slow
def test_make_run_keeps_its_port_says_it_already_runs_and_restarts_a_crashed_replica(
    tmp_path: Path, fresh_database: str, devstack_prefix: str
) -> None:
    env = dict(os.environ) | {
        "DATABASE_URL": fresh_database,
        "REDIS_URL": TEST_REDIS_URL,
        "REDIS_PREFIX": devstack_prefix,
        "NO_COLOR": "1",
    }
    data_dir = ["--data-dir", str(tmp_path)]
    first = DevstackRun([*data_dir, "--https-port", "0"], env)
    try:
        url = first.wait_for("HTTPS: ").split("HTTPS: ", 1)[1].split()[0]
        first.wait_for("Post a metric:")
        for _ in range(3):
            first.wait_for("")

        again = subprocess.run(
            [sys.executable, "-m", "devstack", *data_dir],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already running" in again.stdout and url in again.stdout
        assert "API key:" in again.stdout and "Post a metric:" in again.stdout
        assert first.process.poll() is None  # the first run was left alone
        assert _post_with_printed_curl(again.stdout).returncode == 0

        state = json.loads((tmp_path / "devstack.json").read_text())
        os.kill(state["children"]["ingest-1"], signal.SIGKILL)
        first.wait_for("ingest-1 stopped unexpectedly (killed by SIGKILL); restarting it")
        first.wait_for("ingest-1 restarted")
        deadline = time.monotonic() + 30
        while (posted := _post_with_printed_curl(again.stdout)).returncode != 0:
            assert time.monotonic() < deadline, posted.stdout + posted.stderr
            time.sleep(0.5)
        assert json.loads(posted.stdout) == {"accepted": 1}
    finally:
        assert first.stop() == 0, "".join(first.output)

    second = DevstackRun(data_dir, env)  # no port asked: the remembered one
    try:
        assert second.wait_for("HTTPS: ").split("HTTPS: ", 1)[1].split()[0] == url
        second.wait_for("Post a metric:")
    finally:
        assert second.stop() == 0, "".join(second.output)


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REDIS_URL"])
def test_an_unreachable_data_store_is_one_line_naming_the_setting(
    tmp_path: Path, variable: str
) -> None:
    (closed,) = free_ports(1)
    env = dict(os.environ) | {
        "DATABASE_URL": ADMIN_POSTGRES_URL,
        "REDIS_URL": TEST_REDIS_URL,
        "NO_COLOR": "1",
    }
    env[variable] = (
        f"postgresql://postgres@127.0.0.1:{closed}/scout"
        if variable == "DATABASE_URL"
        else f"redis://127.0.0.1:{closed}/0"
    )
    result = subprocess.run(
        [sys.executable, "-m", "devstack", "--data-dir", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    (line,) = [line for line in output.splitlines() if "cannot reach" in line]
    assert f"({variable})" in line and str(closed) in line
