"""The `scoutctl` commands, built on `ScoutClient`.

`run(argv, ...)` takes its environment and streams as arguments, so tests (and other programs)
drive it without touching the process's own.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

from scout_agent.envfile import EnvFileError, parse, update_file
from scoutctl import __version__
from scoutctl.client import ScoutClient, ScoutError, ScoutUnreachable, check_https
from scoutctl.store import SessionStore, config_dir

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_UNREACHABLE = 5

EPILOG = """\
authentication: SCOUT_API_KEY in the environment authenticates as that server's key; otherwise
the session saved by `scoutctl login` (in $XDG_CONFIG_HOME/scout or ~/.config/scout, mode 0600).
environment: SCOUT_URL (the gateway, https:// only), SCOUT_CA_FILE (PEM CA to trust),
SCOUT_API_KEY.
SERVER is a server id or its name (when no other server has that name).

exit status: 0 ok, 1 API error, 2 usage (or an ambiguous SERVER), 3 not signed in or
authentication refused, 4 not found, 5 gateway unreachable or unavailable.
"""
UUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class UsageError(Exception):
    pass


class AuthNeeded(Exception):
    pass


class NotFound(Exception):
    pass


@dataclass
class Context:
    args: argparse.Namespace
    environ: Mapping[str, str]
    stdin: TextIO
    stdout: TextIO
    stderr: TextIO
    store: SessionStore

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))

    def out(self, text: str = "") -> None:
        self.stdout.write(text + "\n")

    def err(self, text: str) -> None:
        self.stderr.write(f"scoutctl: {text}\n")

    def emit(self, data: Any, render: Callable[[], None]) -> None:
        if self.json:
            self.out(json.dumps(data, indent=2, sort_keys=True))
        else:
            render()

    def table(self, rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> None:
        cells = [[_cell(v) for v in row] for row in rows]
        widths = [len(h) for h in headers]
        for row in cells:
            widths = [max(w, len(c)) for w, c in zip(widths, row)]  # noqa: B905
        self.out("  ".join(h.upper().ljust(w) for h, w in zip(headers, widths)).rstrip())  # noqa: B905
        for row in cells:
            self.out("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())  # noqa: B905
        if not rows:
            self.out("(none)")

    # ---- clients -------------------------------------------------------------------------------

    def ca_file(self) -> str | None:
        return getattr(self.args, "ca_file", None) or self.environ.get("SCOUT_CA_FILE") or None

    def url_option(self) -> str | None:
        return getattr(self.args, "url", None) or self.environ.get("SCOUT_URL") or None

    def client(self) -> ScoutClient:
        """A client authenticated by SCOUT_API_KEY, else by the saved session."""
        api_key = self.environ.get("SCOUT_API_KEY")
        if api_key:
            url = self.url_option()
            if url is None:
                saved = self.store.load()
                url = saved.url if saved is not None else None
            if url is None:
                raise UsageError("SCOUT_API_KEY is set: give the gateway with --url or SCOUT_URL")
            return ScoutClient(_https(url), api_key=api_key.strip(), ca_file=self.ca_file())
        session = self.store.load()
        if session is None:
            raise AuthNeeded("not signed in: run `scoutctl login --url https://...` first")
        url = self.url_option() or session.url
        if _https(url) != session.url:
            raise AuthNeeded(f"the saved session is for {session.url}; sign in to {url} first")
        return ScoutClient(session.url, session=session, ca_file=self.ca_file() or session.ca_file)


def _https(url: str) -> str:
    try:
        return check_https(url)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same number
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def parse_duration(text: str) -> float:
    match = DURATION.match(text.strip().lower())
    if not match:
        raise UsageError(f"{text!r} is not a duration such as 90s, 15m, 1h or 2d")
    return float(match.group(1)) * UNITS[match.group(2)]


def resolve_server(ctx: Context, client: ScoutClient, server: str) -> str:
    if UUID.match(server):
        return server.lower()
    if client.api_key is not None:
        identity = client.whoami()
        if identity.get("kind") == "server":
            found = client.get_server(identity["id"])["server"]
            if found["name"] == server:
                return str(found["id"])
        raise NotFound(f"no server named {server!r} is visible to this key; use the server id")
    matches = [s for s in client.iter_servers() if s["name"] == server]
    if not matches:
        raise NotFound(f"no server named {server!r}")
    if len(matches) > 1:
        ids = ", ".join(s["id"] for s in matches)
        raise UsageError(f"{len(matches)} servers are named {server!r} ({ids}); give the id")
    return str(matches[0]["id"])


# ---- commands ------------------------------------------------------------------------------------


def cmd_login(ctx: Context) -> int:
    url = ctx.url_option()
    saved = ctx.store.load()
    if url is None and saved is not None:
        url = saved.url
    if url is None:
        raise UsageError("give the gateway: scoutctl login --url https://scout.example.com")
    url = _https(url)
    email = ctx.args.email
    interactive = ctx.stdin.isatty()
    if not email:
        if not interactive:
            raise UsageError("give --email when stdin is not a terminal")
        ctx.stderr.write("Email: ")
        ctx.stderr.flush()
        email = ctx.stdin.readline().strip()
    if interactive:
        password = getpass.getpass("Password: ", stream=ctx.stderr)
    else:
        password = ctx.stdin.readline().rstrip("\r\n")
    if not email or not password:
        raise UsageError("email and password are required")
    with ScoutClient(url, ca_file=ctx.ca_file()) as client:
        body = client.login(email, password)
        assert client.session is not None
        ca_file = ctx.ca_file()
        client.session.ca_file = os.path.abspath(ca_file) if ca_file else None
        ctx.store.save(client.session)
    ctx.emit(
        {"user": body["user"], "expires_at": body.get("expires_at"), "url": url},
        lambda: ctx.out(
            f"signed in to {url} as {body['user']['email']} until {body.get('expires_at')}"
        ),
    )
    return EXIT_OK


def cmd_logout(ctx: Context) -> int:
    session = ctx.store.load()
    if session is None:
        ctx.emit({"signed_out": False}, lambda: ctx.out("not signed in"))
        return EXIT_OK
    client = ScoutClient(session.url, session=session, ca_file=ctx.ca_file() or session.ca_file)
    with client:
        try:
            client.logout()
        except ScoutError as exc:
            if exc.status != 401:
                raise
    ctx.store.clear()
    ctx.emit({"signed_out": True}, lambda: ctx.out(f"signed out of {session.url}"))
    return EXIT_OK


def cmd_whoami(ctx: Context) -> int:
    with ctx.client() as client:
        body = client.whoami()
    ctx.emit(
        body,
        lambda: ctx.table(
            [[body["kind"], body["id"], body["account_id"], body["auth_method"]]],
            ["kind", "id", "account", "auth"],
        ),
    )
    return EXIT_OK


def cmd_sessions(ctx: Context) -> int:
    with ctx.client() as client:
        if ctx.args.revoke:
            client.revoke_session(ctx.args.revoke)
            ctx.emit(
                {"revoked": ctx.args.revoke}, lambda: ctx.out(f"ended session {ctx.args.revoke}")
            )
            return EXIT_OK
        if ctx.args.revoke_others:
            ended = client.revoke_other_sessions()
            ctx.emit(ended, lambda: ctx.out(f"ended {ended.get('revoked', 0)} other session(s)"))
            return EXIT_OK
        body = client.sessions()
    rows = [
        [
            "*" if s.get("current") else "",
            s["id"],
            s.get("created_at"),
            s.get("last_seen_at"),
            s.get("client_address"),
            s.get("user_agent"),
        ]
        for s in body["sessions"]
    ]
    ctx.emit(
        body,
        lambda: ctx.table(rows, ["", "id", "created", "last seen", "address", "user agent"]),
    )
    return EXIT_OK


def cmd_password(ctx: Context) -> int:
    """Change the signed-in user's password; every other session of theirs ends."""
    if ctx.stdin.isatty():
        current = getpass.getpass("Current password: ", stream=ctx.stderr)
        new = getpass.getpass("New password: ", stream=ctx.stderr)
        if getpass.getpass("Repeat new password: ", stream=ctx.stderr) != new:
            raise UsageError("the new passwords did not match")
    else:  # scripts: the current password, then the new one, one per line
        current = ctx.stdin.readline().rstrip("\r\n")
        new = ctx.stdin.readline().rstrip("\r\n")
    if not current or not new:
        raise UsageError("the current and the new password are required")
    with ctx.client() as client:
        body = client.change_password(current, new)
    ctx.emit(
        body,
        lambda: ctx.out(
            f"password changed; {body.get('sessions_ended', 0)} other session(s) ended"
        ),
    )
    return EXIT_OK


def cmd_signins(ctx: Context) -> int:
    with ctx.client() as client:
        body = client.sign_in_activity(ctx.args.limit, types=ctx.args.type)
    rows = [
        [e.get("occurred_at"), e.get("type"), e.get("client_address"), e.get("user_agent")]
        for e in body["events"]
    ]
    ctx.emit(body, lambda: ctx.table(rows, ["time", "event", "address", "user agent"]))
    return EXIT_OK


def cmd_servers_list(ctx: Context) -> int:
    with ctx.client() as client:
        servers = list(client.iter_servers())
    rows = [
        [
            s["id"],
            s["name"],
            s.get("status"),
            "..." + s["key_hint"],
            s.get("last_seen_at"),
            s.get("created_at"),
        ]
        for s in servers
    ]
    ctx.emit(
        {"servers": servers},
        lambda: ctx.table(rows, ["id", "name", "status", "key", "last seen", "created"]),
    )
    return EXIT_OK


def cmd_servers_add(ctx: Context) -> int:
    with ctx.client() as client:
        body = client.create_server(ctx.args.name)

    def render() -> None:
        # The key alone on stdout, so `scoutctl servers add NAME > key.txt` feeds the install.
        server = body["server"]
        ctx.err(f"created server {server['name']} ({server['id']}); its API key:")
        ctx.out(body["api_key"])
        ctx.err("the key is shown only this once: install it with `scout-agent install`")

    ctx.emit(body, render)
    return EXIT_OK


def cmd_servers_update(ctx: Context) -> int:
    """rename, pause and resume: one PATCH each."""
    changes: dict[str, dict[str, Any]] = {
        "rename": {"name": getattr(ctx.args, "name", None)},
        "pause": {"paused": True},
        "resume": {"paused": False},
    }
    change = changes[ctx.args.servers_command]
    with ctx.client() as client:
        server_id = resolve_server(ctx, client, ctx.args.server)
        body = client.update_server(server_id, **change)
    server = body["server"]
    ctx.emit(body, lambda: ctx.out(f"{server['name']} ({server['id']}): {server['status']}"))
    return EXIT_OK


def cmd_servers_remove(ctx: Context) -> int:
    with ctx.client() as client:
        server_id = resolve_server(ctx, client, ctx.args.server)
        if not ctx.args.yes and ctx.stdin.isatty():
            ctx.stderr.write(f"Remove server {server_id}? Its key stops working at once. [y/N] ")
            ctx.stderr.flush()
            if ctx.stdin.readline().strip().lower() not in ("y", "yes"):
                ctx.err("not removed")
                return EXIT_USAGE
        client.delete_server(server_id)
    ctx.emit({"removed": server_id}, lambda: ctx.out(f"removed server {server_id}"))
    return EXIT_OK


def _check_env_file(path: str) -> None:
    """Before rotating: the file must be there, parse and be replaceable, or the new key would
    be shown but not installed."""
    try:
        with open(path, encoding="utf-8") as handle:
            parse(handle.read(), path)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except EnvFileError as exc:
        raise UsageError(str(exc)) from None
    directory = os.path.dirname(os.path.abspath(path))
    if not os.access(directory, os.W_OK):
        raise UsageError(f"cannot replace {path}: {directory} is not writable (use sudo?)")


def cmd_key_rotate(ctx: Context) -> int:
    env_file = ctx.args.update_env
    if env_file is not None:
        _check_env_file(env_file)
    with ctx.client() as client:
        server_id = resolve_server(ctx, client, ctx.args.server)
        body = client.rotate_key(server_id, ctx.args.grace)
    key = body["api_key"]
    hint = "..." + key[-4:]
    if env_file is None:

        def render() -> None:
            ctx.err(f"new API key of {body['server']['name']} (the key alone on stdout):")
            ctx.out(key)
            until = body.get("old_key_valid_until") or "now (revoked)"
            ctx.err(f"old key valid until: {until}")

        ctx.emit(body, render)
        return EXIT_OK
    try:
        update_file(env_file, {"SCOUTAPIKEY": key})
    except (OSError, EnvFileError) as exc:
        # The old key is already dead (or dying): the new one must not be lost.
        ctx.err(f"rotated, but could not write {env_file}: {exc}")
        ctx.err(f"the new key is: {key} (put it in SCOUTAPIKEY yourself)")
        return EXIT_API_ERROR
    result = {
        "server": body["server"],
        "key_hint": hint,
        "old_key_valid_until": body.get("old_key_valid_until"),
        "env_file": env_file,
    }
    ctx.emit(
        result,
        lambda: ctx.out(
            f"rotated the key of {body['server']['name']} and wrote {hint} to {env_file}; the "
            "agent picks it up within one interval (no restart)"
        ),
    )
    return EXIT_OK


def cmd_activity(ctx: Context) -> int:
    with ctx.client() as client:
        server_id = resolve_server(ctx, client, ctx.args.server)
        body = client.activity(server_id, ctx.args.limit, types=ctx.args.type)
    rows = [
        [
            e.get("occurred_at"),
            e.get("type"),
            e.get("actor"),
            e.get("client_address"),
            "..." + e["key_hint"] if e.get("key_hint") else None,
            e.get("details"),
        ]
        for e in body["events"]
    ]
    ctx.emit(body, lambda: ctx.table(rows, ["time", "event", "actor", "address", "key", "details"]))
    return EXIT_OK


def cmd_metrics(ctx: Context) -> int:
    names = [n.strip() for raw in ctx.args.name for n in raw.split(",") if n.strip()]
    since = parse_duration(ctx.args.since)
    with ctx.client() as client:
        server_id = resolve_server(ctx, client, ctx.args.server)
        body = client.query_metrics(
            server_id,
            names,
            start=round(time.time() - since, 3),
            step=ctx.args.step,
            points=ctx.args.points,
        )
    rows = [
        [series["name"], p["ts"], p["avg"], p["min"], p["max"], p["count"]]
        for series in body["series"]
        for p in series["points"]
    ]
    ctx.emit(body, lambda: ctx.table(rows, ["name", "time", "avg", "min", "max", "count"]))
    return EXIT_OK


def cmd_latest(ctx: Context) -> int:
    with ctx.client() as client:
        server_id = resolve_server(ctx, client, ctx.args.server)
        body = client.latest_metrics(server_id)
    rows = [[m["name"], m["value"], m["ts"]] for m in body["metrics"]]
    ctx.emit(body, lambda: ctx.table(rows, ["name", "value", "time"]))
    return EXIT_OK


# ---- parser --------------------------------------------------------------------------------------


def _parser_class(stdout: TextIO, stderr: TextIO) -> type[argparse.ArgumentParser]:
    """An ArgumentParser whose help and usage errors go to the given streams."""

    class Parser(argparse.ArgumentParser):
        def _print_message(self, message: str, file: Any = None) -> None:
            if message:
                (stderr if file is sys.stderr else stdout).write(message)

    return Parser


class _Commands:
    """Adds subcommands that share the common options, the epilog and the formatter."""

    def __init__(self, common: argparse.ArgumentParser) -> None:
        self.common = common
        self.formatter = argparse.RawDescriptionHelpFormatter

    def add(
        self, group: Any, name: str, handler: Callable[[Context], int], help_text: str
    ) -> argparse.ArgumentParser:
        sub: argparse.ArgumentParser = group.add_parser(
            name,
            help=help_text,
            description=help_text,
            epilog=EPILOG,
            formatter_class=self.formatter,
            parents=[self.common],
        )
        sub.set_defaults(handler=handler)
        return sub


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--url", default=argparse.SUPPRESS, help="the gateway, https:// (default $SCOUT_URL)"
    )
    common.add_argument(
        "--ca-file", default=argparse.SUPPRESS, help="PEM CA to trust (default $SCOUT_CA_FILE)"
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    return common


def build_parser(
    parser_class: type[argparse.ArgumentParser] = argparse.ArgumentParser,
) -> argparse.ArgumentParser:
    cli = _Commands(_common_options())
    parser = parser_class(
        prog="scoutctl",
        description="Server Scout from the command line: sessions, servers, keys, metrics.",
        epilog=EPILOG,
        formatter_class=cli.formatter,
        parents=[cli.common],
    )
    parser.add_argument("--version", action="version", version=f"scoutctl {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_account_commands(cli, commands)
    _add_server_commands(cli, commands)
    _add_key_and_data_commands(cli, commands)
    return parser


def _add_account_commands(cli: _Commands, commands: Any) -> None:
    add = cli.add
    login = add(
        commands, "login", cmd_login, "sign in (the password is prompted, or read from stdin)"
    )
    login.add_argument("--email", help="the account's email (prompted when omitted)")
    add(commands, "logout", cmd_logout, "sign out and forget the saved session")
    add(commands, "whoami", cmd_whoami, "who the session or key authenticates as")
    sessions = add(commands, "sessions", cmd_sessions, "your signed-in sessions")
    ending = sessions.add_mutually_exclusive_group()
    ending.add_argument("--revoke", metavar="ID", help="end one of your sessions")
    ending.add_argument(
        "--revoke-others", action="store_true", help="end every session but this one"
    )
    add(
        commands,
        "password",
        cmd_password,
        "change your password (prompted; on stdin: current, then new) and end other sessions",
    )
    signins = add(commands, "signins", cmd_signins, "your sign-in activity, newest first")
    signins.add_argument("--limit", type=int, default=50, help="events to show (default 50)")
    signins.add_argument(
        "--type", action="append", default=[], help="only this event type (repeatable)"
    )


def _add_server_commands(cli: _Commands, commands: Any) -> None:
    add = cli.add
    servers = commands.add_parser(
        "servers", help="list, add or remove servers", description="Servers of your account."
    )
    server_commands = servers.add_subparsers(
        dest="servers_command", metavar="COMMAND", required=True
    )
    add(server_commands, "list", cmd_servers_list, "list your servers")
    add(server_commands, "add", cmd_servers_add, "add a server and print its API key").add_argument(
        "name"
    )
    rename = add(server_commands, "rename", cmd_servers_update, "give a server a new name")
    rename.add_argument("server", metavar="SERVER")
    rename.add_argument("name", metavar="NAME")
    for verb, help_text in (
        ("pause", "pause a server's monitoring (maintenance: shown as paused, not offline)"),
        ("resume", "resume a paused server's monitoring"),
    ):
        add(server_commands, verb, cmd_servers_update, help_text).add_argument(
            "server", metavar="SERVER"
        )
    remove = add(server_commands, "remove", cmd_servers_remove, "remove a server (revokes its key)")
    remove.add_argument("server", metavar="SERVER")
    remove.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")


def _add_key_and_data_commands(cli: _Commands, commands: Any) -> None:
    add = cli.add
    key = commands.add_parser("key", help="API keys", description="A server's API key.")
    key_commands = key.add_subparsers(dest="key_command", metavar="COMMAND", required=True)
    rotate = add(
        key_commands,
        "rotate",
        cmd_key_rotate,
        "replace a server's API key (the old one stops working, unless --grace)",
    )
    rotate.add_argument("server", metavar="SERVER")
    rotate.add_argument(
        "--grace", type=int, metavar="SECONDS", help="keep the old key valid this long (0-86400)"
    )
    rotate.add_argument(
        "--update-env",
        metavar="FILE",
        help="write the new key into this agent env file (atomically, keeping its mode and "
        "owner); the running agent picks it up without a restart",
    )

    activity = add(commands, "activity", cmd_activity, "a server's key activity, newest first")
    activity.add_argument("server", metavar="SERVER")
    activity.add_argument("--limit", type=int, default=50, help="events to show (default 50)")
    activity.add_argument(
        "--type", action="append", default=[], help="only this event type (repeatable)"
    )

    metrics = add(commands, "metrics", cmd_metrics, "a server's metric series")
    metrics.add_argument("server", metavar="SERVER")
    metrics.add_argument(
        "--name", action="append", required=True, help="metric name (repeat, or a,b)"
    )
    metrics.add_argument("--since", default="1h", help="how far back (90s, 15m, 1h, 2d)")
    resolution = metrics.add_mutually_exclusive_group()
    resolution.add_argument("--step", help="bucket width, e.g. 60s (default: about 300 points)")
    resolution.add_argument(
        "--points",
        type=int,
        help="at most this many points a series, at the nice step that fits (1 to 1000)",
    )

    latest = add(commands, "latest", cmd_latest, "the latest value of each of a server's metrics")
    latest.add_argument("server", metavar="SERVER")


def run(
    argv: Sequence[str],
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    environ = os.environ if environ is None else environ
    stdin = stdin or sys.stdin
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    parser = build_parser(_parser_class(stdout, stderr))
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return int(exc.code or 0)
    ctx = Context(args, environ, stdin, stdout, stderr, SessionStore(config_dir(environ)))
    try:
        return int(args.handler(ctx))
    except UsageError as exc:
        ctx.err(str(exc))
        return EXIT_USAGE
    except AuthNeeded as exc:
        ctx.err(str(exc))
        return EXIT_AUTH
    except NotFound as exc:
        ctx.err(str(exc))
        return EXIT_NOT_FOUND
    except ScoutUnreachable as exc:
        ctx.err(str(exc))
        return EXIT_UNREACHABLE
    except ScoutError as exc:
        return _api_error(ctx, exc)
    except KeyboardInterrupt:
        return 130


def _api_error(ctx: Context, exc: ScoutError) -> int:
    if ctx.json:
        ctx.stdout.write(json.dumps({"error": exc.problem or {"status": exc.status}}) + "\n")
    ctx.err(str(exc))
    if exc.status == 401:
        if exc.problem_type == "session-invalid" and not ctx.environ.get("SCOUT_API_KEY"):
            ctx.store.clear()
            ctx.err("sign in again with `scoutctl login`")
        return EXIT_AUTH
    if exc.status == 403 and exc.problem_type in ("session-required", "api-key-required"):
        return EXIT_AUTH
    if exc.status == 404:
        return EXIT_NOT_FOUND
    if exc.status in (502, 503, 504):
        return EXIT_UNREACHABLE
    return EXIT_API_ERROR
