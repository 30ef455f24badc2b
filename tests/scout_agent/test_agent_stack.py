"""The agent against the real system (gateway with the development CA, services, PostgreSQL):
samples arrive, an outage loses nothing and duplicates nothing, a rejected key waits for the new
one, a rotation through `scoutctl key rotate --update-env` loses nothing, the spool bound holds
and is reported."""

from __future__ import annotations

import asyncio
import io
import signal
import sys
from pathlib import Path

import pytest

from scout_admin.commands import Admin
from scout_agent.check import check
from scout_agent.envfile import update_file
from scoutctl.cli import run as scoutctl
from tests.conftest import STRONG_PASSWORD
from tests.gateway.keys_support import new_server, rotate
from tests.scout_agent.support import (
    agent_thread,
    assert_each_sample_once,
    env_text,
    free_port,
    gateway_at,
    spool_files,
    stored,
    wait_for,
    wait_stored,
    write_env,
)
from tests.stack import Environment, running_stack

INTERVAL = "0.2"
# How long the gateway stays down; the issue speaks of tens of seconds, which behaves the same
# (the spool and backoff do not care) but would slow the suite.
OUTAGE_SECONDS = 3.0


def agent_env(
    tmp_path: Path, env: Environment, api_key: str, url: str, **extra: str
) -> tuple[Path, Path]:
    spool = tmp_path / "spool"
    env_file = tmp_path / "agent.env"
    extra = {"SCOUTINTERVAL": INTERVAL, "SCOUTMAXBACKOFF": "0.5", **extra}
    write_env(env_file, env_text(api_key, url, spool, env.ca_file, **extra))
    return env_file, spool


async def test_samples_arrive_exactly_as_collected(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack:
        env_file, _ = agent_env(tmp_path, env, server.api_key, stack.gateway.url)
        with agent_thread(env_file) as (_, produced, log):
            await wait_for(lambda: produced.samples >= 3)
            await wait_stored(admin, server.server_id, produced.snapshot)
        rows = await stored(admin, server.server_id)
        assert rows == produced.snapshot()  # nothing lost, nothing made up
        names = {name for name, _, _ in rows}
        for expected in (
            "cpu.percent",
            "cpu.user",
            "cpu.iowait",
            "load.1",
            "load.15",
            "mem.used_bytes",
            "swap.total_bytes",
            "uptime.seconds",
            "proc.count",
            "scout.agent.spool_dropped",
        ):
            assert expected in names
        assert any(name.startswith("disk.") for name in names)
        assert server.api_key not in log.text()
        assert server.api_key[-4:] in log.text()


async def test_outage_then_recovery_every_sample_exactly_once(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    server = await new_server(admin)
    port = free_port()
    async with running_stack(env) as stack:
        env_file, spool = agent_env(tmp_path, env, server.api_key, f"https://localhost:{port}")
        with agent_thread(env_file) as (agent, produced, log):
            async with gateway_at(env, stack.backends, port):
                await wait_for(lambda: produced.samples >= 2)
                await wait_stored(admin, server.server_id, produced.snapshot)
            # The gateway is down: the agent keeps collecting into its spool.
            before = produced.samples
            await asyncio.sleep(OUTAGE_SECONDS)
            await wait_for(lambda: produced.samples >= before + 3 and len(spool_files(spool)) >= 3)
            assert "cannot send" in log.text()
            async with gateway_at(env, stack.backends, port):
                during = produced.samples
                await wait_for(lambda: produced.samples >= during + 2)
                await wait_stored(admin, server.server_id, produced.snapshot)
                agent.stop()
        await assert_each_sample_once(admin, server.server_id, produced, spool)
        assert "sending again" in log.text()


async def test_rejected_key_waits_for_the_new_one_without_restart(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack:
        env_file, spool = agent_env(tmp_path, env, server.api_key, stack.gateway.url)
        with agent_thread(env_file) as (agent, produced, log):
            await wait_for(lambda: produced.samples >= 1)
            await wait_stored(admin, server.server_id, produced.snapshot)
            new_key = await rotate(admin, server)
            await wait_for(lambda: "was rejected" in log.text())
            text = log.text()
            assert "api-key-rotated" in text
            assert f"SCOUTAPIKEY in {env_file}" in text
            assert server.api_key not in text
            await wait_for(lambda: len(spool_files(spool)) >= 2)  # still collecting
            update_file(str(env_file), {"SCOUTAPIKEY": new_key})
            await wait_for(lambda: "reloaded" in log.text())
            count = produced.samples
            await wait_for(lambda: produced.samples >= count + 1)
            await wait_stored(admin, server.server_id, produced.snapshot)
            assert agent.config.api_key == new_key
        await assert_each_sample_once(admin, server.server_id, produced, spool)
        assert new_key not in log.text()


async def test_rotation_with_scoutctl_update_env_loses_nothing(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack:
        url = stack.gateway.url
        env_file, spool = agent_env(tmp_path, env, server.api_key, url)
        environ = {"XDG_CONFIG_HOME": str(tmp_path / "config"), "SCOUT_CA_FILE": env.ca_file}

        def ctl(*argv: str, stdin: str = "") -> tuple[int, str]:
            out = io.StringIO()
            code = scoutctl(
                list(argv), environ=environ, stdin=io.StringIO(stdin), stdout=out, stderr=out
            )
            return code, out.getvalue()

        code, output = await asyncio.to_thread(
            ctl, "login", "--url", url, "--email", server.email, stdin=STRONG_PASSWORD + "\n"
        )
        assert code == 0, output
        with agent_thread(env_file) as (agent, produced, _):
            await wait_for(lambda: produced.samples >= 3)
            code, output = await asyncio.to_thread(
                ctl, "key", "rotate", "web-1", "--update-env", str(env_file)
            )
            assert code == 0, output
            assert server.api_key[-4:] not in output
            await wait_for(lambda: agent.config.api_key != server.api_key)
            count = produced.samples
            await wait_for(lambda: produced.samples >= count + 3)
            await wait_stored(admin, server.server_id, produced.snapshot)
        await assert_each_sample_once(admin, server.server_id, produced, spool)
        assert env_file.stat().st_mode & 0o777 == 0o600
        assert "# written by the agent tests" in env_file.read_text()


async def test_spool_bound_is_honoured_and_reported(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack:
        nowhere = f"https://localhost:{free_port()}"
        env_file, spool = agent_env(
            tmp_path, env, server.api_key, nowhere, SCOUTSPOOLMAX="3", SCOUTINTERVAL="0.1"
        )
        with agent_thread(env_file) as (agent, produced, log):
            await wait_for(lambda: agent.spool.dropped >= 5)
            assert len(spool_files(spool)) <= 3
            assert "spool full" in log.text()
            # Pointing the agent at the gateway is an env file change: no restart needed.
            write_env(
                env_file,
                env_text(
                    server.api_key,
                    stack.gateway.url,
                    spool,
                    env.ca_file,
                    SCOUTSPOOLMAX="3",
                    SCOUTINTERVAL="0.1",
                ),
            )
            await wait_for(lambda: "reloaded" in log.text() and not spool_files(spool))
            dropped = agent.spool.dropped
            count = produced.samples
            await wait_for(lambda: produced.samples >= count + 2)
            await wait_stored(admin, server.server_id, lambda: set())
            await wait_for(lambda: "dropped unsent while the spool was full" in log.text())
        rows = await stored(admin, server.server_id)
        reported = max(v for name, _, v in rows if name == "scout.agent.spool_dropped")
        assert reported >= dropped >= 5
        # What was dropped is missing, everything else arrived.
        assert rows < produced.snapshot()
        sample_times = {ts for _, ts, _ in rows}
        assert len(sample_times) == produced.samples - agent.spool.dropped


async def test_check_says_what_works(env: Environment, admin: Admin, tmp_path: Path) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack:
        env_file, _ = agent_env(tmp_path, env, server.api_key, stack.gateway.url)

        def run_check() -> tuple[int, str]:
            out = io.StringIO()
            return check(str(env_file), out), out.getvalue()

        code, output = await asyncio.to_thread(run_check)
        assert code == 0, output
        assert "accepted: server " + server.server_id in output
        assert server.api_key not in output and server.api_key[-4:] in output

        write_env(env_file, env_text(server.api_key, stack.gateway.url, tmp_path, None))
        code, output = await asyncio.to_thread(run_check)
        assert code == 4 and "tls" in output and "FAIL" in output  # the dev CA is not trusted

        await rotate(admin, server)
        write_env(env_file, env_text(server.api_key, stack.gateway.url, tmp_path, env.ca_file))
        code, output = await asyncio.to_thread(run_check)
        assert code == 5 and "api-key-rotated" in output


async def test_process_once_sighup_and_sigterm(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    server = await new_server(admin)
    async with running_stack(env) as stack:
        env_file, spool = agent_env(tmp_path, env, server.api_key, stack.gateway.url)
        once = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scout_agent", "--once", "--env-file", str(env_file),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await once.communicate()
        assert once.returncode == 0, err.decode()
        assert not spool_files(spool)
        assert len(await stored(admin, server.server_id)) > 10

        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "scout_agent", "run", "--env-file", str(env_file),
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        lines: list[str] = []

        async def read_until(text: str) -> None:
            async with asyncio.timeout(20):
                while not any(text in line for line in lines):
                    line = await process.stderr.readline()  # type: ignore[union-attr]
                    assert line, "\n".join(lines)
                    lines.append(line.decode())

        try:
            await read_until("started")
            process.send_signal(signal.SIGHUP)  # reread the env file now
            await read_until("reloaded")
            process.terminate()
            async with asyncio.timeout(20):
                rest = await process.stderr.read()
                code = await process.wait()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert code == 0
        assert "stopping" in rest.decode()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o620, 0o602])
async def test_refused_as_a_process_with_how_to_fix(tmp_path: Path, mode: int) -> None:
    key = "0123456789abcdef" * 4
    env_file = write_env(
        tmp_path / "agent.env", env_text(key, "https://localhost:1", tmp_path, None), mode
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "scout_agent", "--env-file", str(env_file),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 3
    message = err.decode()
    assert f"chmod 600 {env_file}" in message
    assert key not in message + out.decode()
