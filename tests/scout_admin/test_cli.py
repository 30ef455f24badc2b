"""scout-admin as an operator runs it: a real process against the real database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import STRONG_PASSWORD, unique_email
from tests.stack import Environment

ROOT = Path(__file__).resolve().parents[2]
KEY = re.compile(r"^[0-9a-f]{64}$")


def scout_admin(
    env: Environment, *args: str, stdin: str = "", extra_env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    variables = {
        "PATH": os.environ["PATH"],
        "DATABASE_URL": env.database_url,
        "REDIS_URL": env.redis_url,
        "REDIS_PREFIX": env.redis_prefix,
        **(extra_env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "scout_admin", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=variables,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_user_server_and_key_lifecycle(env: Environment) -> None:
    email = unique_email()
    created = scout_admin(env, "create-user", "--email", email, stdin=STRONG_PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert STRONG_PASSWORD not in created.stdout + created.stderr

    server = scout_admin(env, "create-server", "--email", email, "--name", "web-1")
    assert server.returncode == 0, server.stderr
    first_key = server.stdout.strip()
    assert KEY.match(first_key), "stdout carries the key alone, for scripts"
    server_id = re.search(r"id ([0-9a-f-]{36})", server.stderr)
    assert server_id
    listing = scout_admin(env, "list-servers", "--email", email)
    assert server_id.group(1) in listing.stdout and "web-1" in listing.stdout
    assert first_key not in listing.stdout and f"…{first_key[-4:]}" in listing.stdout

    rotated = scout_admin(env, "rotate-key", "--email", email, "--server", server_id.group(1))
    assert rotated.returncode == 0, rotated.stderr
    assert KEY.match(rotated.stdout.strip()) and rotated.stdout.strip() != first_key
    assert "no longer accepted" in rotated.stderr

    deleted = scout_admin(env, "delete-server", "--email", email, "--server", server_id.group(1))
    assert deleted.returncode == 0, deleted.stderr
    again = scout_admin(env, "delete-server", "--email", email, "--server", server_id.group(1))
    assert again.returncode == 1 and "server not found" in again.stderr


@pytest.mark.parametrize(
    ("password", "message"),
    [("short", "at least 12 characters"), ("password1234", "too common")],
)
def test_weak_passwords_are_refused_with_the_reason(
    env: Environment, password: str, message: str
) -> None:
    result = scout_admin(env, "create-user", "--email", unique_email(), stdin=password + "\n")
    assert result.returncode == 1
    assert message in result.stderr


def test_passwords_never_come_from_the_command_line(env: Environment) -> None:
    result = scout_admin(env, "create-user", "--email", unique_email(), "--password", "x")
    assert result.returncode == 2  # argparse: no such option


def test_a_missing_setting_is_named(env: Environment) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "scout_admin", "migrate"],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"]},
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "DATABASE_URL is required" in result.stderr


def test_grace_is_bounded(env: Environment) -> None:
    email = unique_email()
    scout_admin(env, "create-user", "--email", email, stdin=STRONG_PASSWORD + "\n")
    server = scout_admin(env, "create-server", "--email", email, "--name", "db")
    server_id = re.search(r"id ([0-9a-f-]{36})", server.stderr)
    assert server_id
    result = scout_admin(
        env, "rotate-key", "--email", email, "--server", server_id.group(1), "--grace", "90000"
    )
    assert result.returncode == 1 and "grace_seconds must be between 0 and 86400" in result.stderr
