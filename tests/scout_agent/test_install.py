"""`scout-agent install`: the env file atomically 0600 root, the hardened unit (the one in
deploy/ is the same template), the single-file build, and Python 3.9."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scout_agent.config import load
from scout_agent.install import render_unit

ROOT = Path(__file__).resolve().parents[2]
KEY = "ab" * 32


def install(tmp_path: Path, *command: str, key: str = KEY) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *command,
            "install",
            "--url",
            "https://scout.example.com",
            "--env-file",
            str(tmp_path / "opt" / "agent.env"),
            "--unit-dir",
            str(tmp_path / "units"),
            "--bin-dir",
            str(tmp_path / "bin"),
        ],
        input=key + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_deploy_unit_is_the_template_with_defaults() -> None:
    assert (ROOT / "deploy" / "systemd" / "scout-agent.service").read_text() == render_unit()


def test_install_writes_a_root_only_env_file_and_a_hardened_unit(tmp_path: Path) -> None:
    result = install(tmp_path, sys.executable, "-m", "scout_agent")
    assert result.returncode == 0, result.stderr
    env_file = tmp_path / "opt" / "agent.env"
    info = env_file.stat()
    assert (info.st_mode & 0o777, info.st_uid) == (0o600, 0)
    assert load(str(env_file), euid=0).api_key == KEY
    assert KEY not in result.stdout + result.stderr and "...abab" in result.stdout
    unit = (tmp_path / "units" / "scout-agent.service").read_text()
    for line in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=read-only",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "ReadWritePaths=-/var/lib/scout-agent/spool",
        f"-m scout_agent run --env-file {env_file}",
    ):
        assert line in unit
    assert "EnvironmentFile" not in unit  # the agent reads (and rereads) the file itself


def test_install_refuses_a_malformed_key(tmp_path: Path) -> None:
    result = install(tmp_path, sys.executable, "-m", "scout_agent", key="not-a-key")
    assert result.returncode == 3 and "64 hexadecimal" in result.stderr
    assert not (tmp_path / "opt" / "agent.env").exists()


def test_single_file_build_installs_itself(tmp_path: Path) -> None:
    archive = tmp_path / "scout-agent.pyz"
    built = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_agent.py"), "--output", str(archive)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    result = install(tmp_path, sys.executable, str(archive))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "opt" / "scout-agent.pyz").read_bytes() == archive.read_bytes()
    unit = (tmp_path / "units" / "scout-agent.service").read_text()
    assert f"{tmp_path}/opt/scout-agent.pyz run --env-file" in unit
    # `scout-agent` is a command from then on, running the installed archive.
    launcher = tmp_path / "bin" / "scout-agent"
    assert launcher.stat().st_mode & 0o777 == 0o755
    version = subprocess.run([str(launcher), "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("scout-agent ")


def _python39() -> str | None:
    found = shutil.which("python3.9")
    candidates = ([found] if found else []) + sorted(
        glob.glob("/root/.pyenv/versions/3.9*/bin/python3.9")
    )
    for candidate in candidates:
        probe = subprocess.run([candidate, "--version"], capture_output=True, check=False)
        if probe.returncode == 0:
            return candidate
    return None


def test_runs_on_python_39(tmp_path: Path) -> None:
    python = _python39()
    if python is None:
        pytest.skip("no Python 3.9 on this machine")
    archive = tmp_path / "scout-agent.pyz"
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_agent.py"), "--output", str(archive)],
        check=True,
        capture_output=True,
    )
    compiled = subprocess.run(
        [python, "-m", "compileall", "-q", str(ROOT / "scout_agent"), str(ROOT / "scoutctl")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert compiled.returncode == 0, compiled.stdout
    result = install(tmp_path, python, str(archive))
    assert result.returncode == 0, result.stderr
    help_text = subprocess.run(
        [python, "-m", "scoutctl", "--help"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert help_text.returncode == 0 and "exit status" in help_text.stdout
