"""scout-admin: operator commands. Passwords come from stdin or a prompt, never from argv."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from auth_service.errors import AuthError
from key_service.errors import KeyServiceError
from scout_admin.commands import open_admin
from scout_admin.settings import Settings
from scout_kit.settings import SettingsError
from scout_kit.timestamps import format_time


def read_password(prompt: str = "Password: ") -> str:
    if sys.stdin.isatty():
        first = getpass.getpass(prompt)
        if getpass.getpass("Repeat password: ") != first:
            raise SystemExit("scout-admin: the passwords did not match")
        return first
    return sys.stdin.readline().rstrip("\r\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scout-admin",
        description="Server Scout operator commands (DATABASE_URL, REDIS_URL, REDIS_PREFIX).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply every service's database migrations")
    user = sub.add_parser(
        "create-user", help="create a user (password from stdin, or prompted on a terminal)"
    )
    user.add_argument("--email", required=True)
    user.add_argument("--account-name", help="name of the new account (default: the email)")
    disable = sub.add_parser(
        "disable-user", help="stop a user signing in and end all their sessions at once"
    )
    disable.add_argument("--email", required=True)
    enable = sub.add_parser("enable-user", help="let a disabled user sign in again")
    enable.add_argument("--email", required=True)
    server = sub.add_parser("create-server", help="add a server and print its API key once")
    server.add_argument("--email", required=True, help="a user of the account that owns it")
    server.add_argument("--name", required=True)
    listing = sub.add_parser("list-servers", help="list the servers of a user's account")
    listing.add_argument("--email", required=True, help="a user of the account")
    rotate = sub.add_parser(
        "rotate-key", help="regenerate a server's API key and print the new one once"
    )
    rotate.add_argument("--email", required=True, help="a user of the account that owns it")
    rotate.add_argument("--server", required=True, help="the server's id")
    rotate.add_argument(
        "--grace",
        type=int,
        default=0,
        metavar="SECONDS",
        help="keep the old key valid this long (0-86400; default 0: invalid at once)",
    )
    delete = sub.add_parser("delete-server", help="delete a server; its key is revoked at once")
    delete.add_argument("--email", required=True, help="a user of the account that owns it")
    delete.add_argument("--server", required=True, help="the server's id")
    return parser


async def run(args: argparse.Namespace, settings: Settings) -> int:
    async with open_admin(settings) as admin:
        if args.command == "migrate":
            applied = await admin.migrate()
            print("applied: " + ", ".join(applied) if applied else "database is up to date")
        elif args.command == "create-user":
            await admin.migrate()
            user = await admin.create_user(args.email, read_password(), args.account_name)
            print(f"created user {user.email} (id {user.id}) in account {user.account_id}")
        elif args.command == "disable-user":
            user, ended = await admin.disable_user(args.email)
            print(f"disabled user {user.email} (id {user.id}); ended {ended} session(s)")
        elif args.command == "enable-user":
            user = await admin.enable_user(args.email)
            print(f"enabled user {user.email} (id {user.id})")
        elif args.command == "create-server":
            await admin.migrate()
            created = await admin.create_server(args.email, args.name)
            print(f"created server {created.server.name} (id {created.server.id})", file=sys.stderr)
            print("API key (shown once; store it in /opt/scout-agent/agent.env):", file=sys.stderr)
            print(created.api_key)
        elif args.command == "list-servers":
            for server in await admin.list_servers(args.email):
                used = format_time(server.key_last_used_at) if server.key_last_used_at else "never"
                print(f"{server.id}  {server.name}  key …{server.key_hint}  last used {used}")
        elif args.command == "rotate-key":
            rotated = await admin.rotate_key(args.email, args.server, args.grace)
            if rotated.old_key_valid_until is not None:
                until = format_time(rotated.old_key_valid_until)
                print(f"the old key stays valid until {until}", file=sys.stderr)
            else:
                print("the old key is no longer accepted", file=sys.stderr)
            print("new API key (shown once):", file=sys.stderr)
            print(rotated.api_key)
        elif args.command == "delete-server":
            await admin.delete_server(args.email, args.server)
            print(f"deleted server {args.server}; its API key is revoked", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        raise SystemExit(f"scout-admin: configuration error: {exc}") from None
    try:
        sys.exit(asyncio.run(run(args, settings)))
    except (AuthError, KeyServiceError) as exc:
        raise SystemExit(f"scout-admin: {exc}") from None


if __name__ == "__main__":
    main()
