"""scoutctl end to end against the real system: sign in, servers, key rotation into an env file,
activity, metrics, the API key instead of a session, sign out; exit codes and --json."""

from __future__ import annotations

import asyncio
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scout_admin.commands import Admin
from scout_agent.envfile import parse
from scoutctl.cli import run
from scoutctl.client import ScoutClient, ScoutError
from tests.conftest import STRONG_PASSWORD, unique_email
from tests.scout_agent.support import free_port
from tests.stack import Environment, running_stack


class Ctl:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = dict(environ)

    async def __call__(self, *argv: str, stdin: str = "", **extra_env: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(
            run,
            list(argv),
            environ={**self.environ, **extra_env},
            stdin=io.StringIO(stdin),
            stdout=out,
            stderr=err,
        )
        return code, out.getvalue(), err.getvalue()

    async def json(self, *argv: str, **extra_env: str) -> Any:
        code, out, err = await self(*argv, "--json", **extra_env)
        assert code == 0, err
        return json.loads(out)


async def test_end_to_end(env: Environment, admin: Admin, tmp_path: Path) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    config = tmp_path / "config"
    ctl = Ctl({"XDG_CONFIG_HOME": str(config), "SCOUT_CA_FILE": env.ca_file})
    async with running_stack(env) as stack:
        url = stack.gateway.url
        assert (await ctl("whoami"))[0] == 3  # not signed in
        code, out, err = await ctl("login", "--url", url, "--email", email, stdin="wrong\n")
        assert code == 3 and "invalid-credentials" in err
        code, out, err = await ctl(
            "login", "--url", url, "--email", email, stdin=STRONG_PASSWORD + "\n"
        )
        assert code == 0, err
        session_file = config / "scout" / "session.json"
        assert session_file.stat().st_mode & 0o777 == 0o600
        assert (config / "scout").stat().st_mode & 0o777 == 0o700
        assert STRONG_PASSWORD not in session_file.read_text()

        whoami = await ctl.json("whoami")
        assert whoami["kind"] == "user" and whoami["auth_method"] == "session"
        sessions = await ctl.json("sessions")
        assert [s["current"] for s in sessions["sessions"]] == [True]

        created = await ctl.json("servers", "add", "db-1")  # CSRF handled by the client
        server_id, first_key = created["server"]["id"], created["api_key"]
        code, out, _ = await ctl("servers", "list")
        assert code == 0 and "db-1" in out and server_id in out and first_key not in out
        assert "initialising" in out
        assert [s["name"] for s in (await ctl.json("servers", "list"))["servers"]] == ["db-1"]

        # Rotation into an agent env file: mode, owner, comments and other lines kept.
        env_file = tmp_path / "agent.env"
        env_file.write_text(f"# agent\nSCOUTAPIKEY={first_key}\nSCOUTURL={url}\n")
        env_file.chmod(0o600)
        os.chown(env_file, 0, 0)
        code, out, err = await ctl("key", "rotate", "db-1", "--update-env", str(env_file))
        assert code == 0, err
        new_key = parse(env_file.read_text())["SCOUTAPIKEY"]
        assert new_key != first_key and new_key not in out and new_key[-4:] in out
        assert env_file.read_text() == f"# agent\nSCOUTAPIKEY={new_key}\nSCOUTURL={url}\n"
        info = env_file.stat()
        assert (info.st_mode & 0o777, info.st_uid, info.st_gid) == (0o600, 0, 0)

        rotated = await ctl.json("key", "rotate", server_id, "--grace", "60")
        assert rotated["old_key_valid_until"] is not None
        key = rotated["api_key"]

        # Metrics posted with the key, read back with the session and with SCOUT_API_KEY.
        with ScoutClient(url, api_key=key, ca_file=env.ca_file) as agent:
            accepted = await asyncio.to_thread(
                agent.post_metrics, [{"ts": _now(), "metrics": {"cpu.percent": 12.5}}]
            )
        assert accepted == {"accepted": 1}
        latest = await ctl.json("latest", "db-1")
        assert [(m["name"], m["value"]) for m in latest["metrics"]] == [("cpu.percent", 12.5)]
        code, out, _ = await ctl("metrics", "db-1", "--name", "cpu.percent", "--since", "1h")
        assert code == 0 and "cpu.percent" in out and "12.5" in out
        series = await ctl.json("metrics", server_id, "--name", "cpu.percent", "--step", "60s")
        assert series["step_seconds"] == 60 and series["series"][0]["points"]
        # An hour in at most 10 points: the nice step that fits is 10 minutes.
        by_width = await ctl.json("metrics", server_id, "--name", "cpu.percent", "--points", "10")
        assert by_width["step_seconds"] == 600 and len(by_width["series"][0]["points"]) <= 10

        as_key = {"SCOUT_API_KEY": key, "SCOUT_URL": url}
        assert (await ctl.json("whoami", **as_key))["kind"] == "server"
        assert (await ctl.json("latest", "db-1", **as_key))["metrics"][0]["value"] == 12.5
        code, _, err = await ctl("sessions", **as_key)
        assert code == 3 and "session-required" in err

        activity = await ctl.json("activity", "db-1")
        types = {e["type"] for e in activity["events"]}
        assert {"key.created", "key.rotated"} <= types
        code, out, _ = await ctl("activity", "db-1")
        assert code == 0 and "key.rotated" in out
        paused = await ctl.json("servers", "pause", "db-1")
        assert paused["server"]["status"] == "paused"
        code, out, _ = await ctl("servers", "resume", "db-1")
        assert code == 0 and "db-1" in out and "paused" not in out
        renamed = await ctl.json("servers", "rename", "db-1", "db-01")
        assert renamed["server"]["name"] == "db-01"
        assert (await ctl.json("servers", "rename", "db-01", "db-1"))["server"]["name"] == "db-1"
        rotations = await ctl.json("activity", "db-1", "--type", "key.rotated")
        assert {e["type"] for e in rotations["events"]} == {"key.rotated"}
        signins = await ctl.json("signins", "--type", "login.succeeded")
        assert signins["events"] and {e["type"] for e in signins["events"]} == {"login.succeeded"}

        # Not found, ambiguous names, usage.
        assert (await ctl("latest", "no-such-server"))[0] == 4
        assert (await ctl("latest", "00000000-0000-0000-0000-000000000000"))[0] == 4
        await ctl.json("servers", "add", "twin")
        await ctl.json("servers", "add", "twin")
        code, _, err = await ctl("latest", "twin")
        assert code == 2 and "give the id" in err
        assert (await ctl("metrics", "db-1"))[0] == 2  # --name is required
        code, _, err = await ctl("metrics", "db-1", "--name", "a", "--step", "1m", "--points", "9")
        assert code == 2 and "not allowed with argument" in err
        code, _, err = await ctl("metrics", "db-1", "--name", "cpu.percent", "--points", "0")
        assert code == 1 and "points" in err  # the API's 422, named
        code, out, _ = await ctl("key", "rotate", "--help")
        assert code == 0 and "--update-env" in out and "exit status" in out

        code, out, _ = await ctl("servers", "remove", "db-1", "--yes")
        assert code == 0 and server_id in out
        assert (await ctl("latest", server_id))[0] == 4

        assert (await ctl("logout"))[0] == 0
        assert not session_file.exists()
        assert (await ctl("whoami"))[0] == 3


async def test_https_only_and_unreachable(env: Environment, tmp_path: Path) -> None:
    ctl = Ctl({"XDG_CONFIG_HOME": str(tmp_path), "SCOUT_CA_FILE": env.ca_file})
    code, _, err = await ctl("login", "--url", "http://localhost:8080", "--email", "a@b.c")
    assert code == 2 and "http://" in err
    closed = f"https://localhost:{free_port()}"
    code, _, err = await ctl("whoami", SCOUT_API_KEY="ab" * 32, SCOUT_URL=closed)
    assert code == 5 and "cannot reach" in err


async def test_client_raises_problem_details(env: Environment) -> None:
    async with running_stack(env) as stack:
        with ScoutClient(stack.gateway.url, api_key="ab" * 32, ca_file=env.ca_file) as client:
            try:
                await asyncio.to_thread(client.whoami)
            except ScoutError as exc:
                error = exc
            else:
                raise AssertionError("an unknown key was accepted")
        assert error.status == 401 and error.problem_type == "unknown-api-key"
        assert error.problem["status"] == 401 and error.detail


def _now() -> float:
    import time

    return round(time.time(), 3)


async def test_session_management_and_password_change(
    env: Environment, admin: Admin, tmp_path: Path
) -> None:
    email = unique_email()
    await admin.create_user(email, STRONG_PASSWORD, None)
    laptop = Ctl({"XDG_CONFIG_HOME": str(tmp_path / "laptop"), "SCOUT_CA_FILE": env.ca_file})
    phone = Ctl({"XDG_CONFIG_HOME": str(tmp_path / "phone"), "SCOUT_CA_FILE": env.ca_file})
    new_password = "a different long passphrase 77"
    async with running_stack(env) as stack:
        url = stack.gateway.url
        for ctl in (laptop, phone):
            code, _, err = await ctl(
                "login", "--url", url, "--email", email, stdin=STRONG_PASSWORD + "\n"
            )
            assert code == 0, err
        sessions = (await laptop.json("sessions"))["sessions"]
        assert len(sessions) == 2
        other = next(s["id"] for s in sessions if not s["current"])
        assert (await laptop.json("sessions", "--revoke", other)) == {"revoked": other}
        assert (await phone("whoami"))[0] == 3  # the phone's session ended
        code, _, err = await laptop("sessions", "--revoke", other)
        assert code == 4, err

        code, _, err = await phone(
            "login", "--url", url, "--email", email, stdin=STRONG_PASSWORD + "\n"
        )
        assert code == 0, err
        code, _, err = await laptop("password", stdin=f"wrong password here\n{new_password}\n")
        assert code == 1 and "wrong-current-password" in err
        code, _, err = await laptop("password", stdin=f"{STRONG_PASSWORD}\nshort\n")
        assert code == 1 and "weak-password" in err
        code, out, err = await laptop(
            "password", "--json", stdin=f"{STRONG_PASSWORD}\n{new_password}\n"
        )
        assert code == 0, err
        changed = json.loads(out)
        assert changed["sessions_ended"] == 1
        assert (await phone("whoami"))[0] == 3
        assert (await laptop("whoami"))[0] == 0

        signins = (await laptop.json("signins"))["events"]
        types = [e["type"] for e in signins]
        assert "password.changed" in types and "login.succeeded" in types
        code, out, _ = await laptop("signins")
        assert code == 0 and "password.changed" in out
