"""The README and the tools agree: the commands it shows, run as it shows them (the installed
console scripts, the single-file agent, shell redirections) against a real stack; versions;
quiet exits when the reader of the output goes away; one time format, full-precision values."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scout_admin.commands import Admin
from scoutctl.client import ScoutClient
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.stack import Environment, running_stack

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
BIN = Path(sys.executable).parent  # .venv/bin: where `make` puts scoutctl and scout-agent
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def project_version() -> str:
    match = re.search(r'^version = "([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert match
    return match.group(1)


def shell(command: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """`command` through bash, as a person would paste it."""
    return subprocess.run(
        ["bash", "-c", command],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def test_the_readme_shows_the_commands_tested_here() -> None:
    for shown in (
        "scoutctl login --url https://localhost:8443 --ca-file .dev/tls/dev-ca.pem --email",
        "scoutctl servers list | add NAME",
        "scoutctl servers list | head -1",
        "scoutctl servers add web-1 > key.txt",
        ".venv/bin/python scripts/build_agent.py",
        "python3 scout-agent.pyz install --url https://scout.example.com",
        "scout-agent check",
        "scoutctl key rotate SERVER --update-env /opt/scout-agent/agent.env",
        "scoutctl --version",
        "scoutctl latest SERVER",
    ):
        assert shown in README, shown


@pytest.mark.parametrize("tool", ["scoutctl", "scout-agent"])
def test_versions_are_the_projects(tool: str) -> None:
    result = subprocess.run([str(BIN / tool), "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{tool} {project_version()}"


@pytest.mark.parametrize(
    "argv",
    [
        ["scoutctl", "--help"],
        ["scoutctl", "key", "--help"],
        ["scout-agent", "check", "--env-file", "/nonexistent/agent.env"],
    ],
)
def test_output_into_a_closed_pipe_ends_quietly(argv: list[str]) -> None:
    """`scoutctl ... | head` where head has already gone: no traceback, SIGPIPE's status."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: every write fails with EPIPE
    try:
        result = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], stdout=write_end, stderr=subprocess.PIPE, text=True
        )
    finally:
        os.close(write_end)
    assert result.stderr == ""
    assert result.returncode == 141


async def test_the_readme_commands_work_as_shown(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    environ = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "PATH": f"{BIN}:/usr/bin:/bin",  # as after `. .venv/bin/activate`
    }
    agent_env = tmp_path / "opt" / "agent.env"
    async with running_stack(env) as stack:
        url, ca = stack.gateway.url, env.ca_file

        async def run(command: str, stdin: str = "") -> str:
            result = await asyncio.to_thread(shell, command, environ, stdin)
            assert result.returncode == 0, f"{command}\n{result.stdout}{result.stderr}"
            assert "Traceback" not in result.stderr
            return result.stdout

        await run(f"scoutctl login --url {url} --ca-file {ca} --email {email}", STRONG_PASSWORD)
        assert json.loads(await run("scoutctl whoami --json"))["kind"] == "user"
        await run(f"scoutctl servers add web-1 > {tmp_path}/key.txt")
        key = (tmp_path / "key.txt").read_text().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", key)

        await run(f".venv/bin/python scripts/build_agent.py --output {tmp_path}/scout-agent.pyz")
        await run(
            f"python3 {tmp_path}/scout-agent.pyz install --url {url} --ca-file {ca} "
            f"--env-file {agent_env} --unit-dir {tmp_path}/units --bin-dir {tmp_path}/bin "
            f"--no-start < {tmp_path}/key.txt"
        )
        check = await run(f"{tmp_path}/bin/scout-agent check --env-file {agent_env}")
        assert re.search(r"^key\s+ok", check, re.M), check

        with ScoutClient(url, api_key=key, ca_file=ca) as agent:
            sample = {"ts": time.time(), "metrics": {"cpu.percent": 1234.56789012345}}
            await asyncio.to_thread(agent.post_metrics, [sample])
        latest = await run("scoutctl latest web-1")
        assert "1234.56789012345" in latest
        (metric,) = json.loads(await run("scoutctl latest web-1 --json"))["metrics"]
        assert TIME.match(metric["ts"]), metric["ts"]

        await run(f"scoutctl key rotate web-1 --update-env {agent_env}")
        check = await run(f"{tmp_path}/bin/scout-agent check --env-file {agent_env}")
        assert re.search(r"^key\s+ok", check, re.M), check
        activity = json.loads(await run("scoutctl activity web-1 --limit 5 --json"))
        assert all(TIME.match(event["occurred_at"]) for event in activity["events"])
        await run("scoutctl metrics web-1 --name cpu.percent --since 1h --step 60s")
        listed = await asyncio.to_thread(shell, "scoutctl servers list | head -1", environ)
        assert listed.returncode == 0 and listed.stderr == ""
        assert listed.stdout.count("\n") == 1 and listed.stdout.split()[:2] == ["ID", "NAME"]
