"""`scout-agent [run] [--once] | check | install`: the agent's command line."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence

from scout_agent import __version__
from scout_agent.agent import EXIT_CONFIG, EXIT_OK, Agent
from scout_agent.config import DEFAULT_ENV_FILE, ENV_FILE_VARIABLE, ConfigError, env_file_path

EPILOG = f"""\
The env file (default {DEFAULT_ENV_FILE}, or ${ENV_FILE_VARIABLE}) holds NAME=value lines:
  SCOUTAPIKEY      the server's API key (required; shown only as its last 4 characters)
  SCOUTURL         the gateway, https:// only (required)
  SCOUTINTERVAL    seconds between samples (default 10)
  SCOUTCAFILE      PEM file of the CA to trust instead of the system's (optional)
  SCOUTSPOOLDIR    where unsent samples wait (default /var/lib/scout-agent/spool)
  SCOUTSPOOLMAX    at most this many samples wait; the oldest are dropped (default 8640)
  SCOUTMAXBACKOFF  longest wait between attempts to send, in seconds (default 300)
It must be readable and writable by its owner only, and owned by root when the agent runs as root.

exit status: 0 ok, 2 usage, 3 configuration refused (the message says how to fix it),
4 gateway unreachable or samples left unsent (--once), 5 the key was rejected.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scout-agent",
        description="Collect this server's metrics and send them to Server Scout over HTTPS.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"scout-agent {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    def env_flag(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--env-file",
            help=f"the env file (default ${ENV_FILE_VARIABLE} or {DEFAULT_ENV_FILE})",
        )

    run = commands.add_parser(
        "run",
        help="collect and send until stopped (the default)",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    env_flag(run)
    run.add_argument("--once", action="store_true", help="send one sample (and the spool), exit")
    check = commands.add_parser(
        "check", help="say whether the configuration, permissions, TLS and key work"
    )
    env_flag(check)
    install = commands.add_parser(
        "install",
        help="write the env file (key read from stdin) and the systemd unit",
        description="Write the env file atomically (mode 0600, owner root) with the key read "
        "from stdin, and install the hardened systemd unit. Needs root.",
    )
    install.add_argument("--url", required=True, help="the gateway's https:// URL")
    install.add_argument("--ca-file", help="PEM file of the CA to trust (e.g. a development CA)")
    install.add_argument("--env-file", default=DEFAULT_ENV_FILE, help="default %(default)s")
    install.add_argument(
        "--unit-dir", default="/etc/systemd/system", help="where the unit goes (%(default)s)"
    )
    install.add_argument(
        "--bin-dir",
        default="/usr/local/bin",
        help="where the `scout-agent` command goes when installing from the archive (%(default)s)",
    )
    install.add_argument("--no-systemd", action="store_true", help="do not install a unit")
    install.add_argument("--no-start", action="store_true", help="install but do not start")
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if not argv or (argv[0].startswith("-") and argv[0] not in ("-h", "--help", "--version")):
        return ["run", *argv]
    return argv


# What a program killed by SIGPIPE exits with, as `grep` or `cat` would when `| head` stops.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            code = _main(argv)
        finally:  # also after --help's SystemExit: a failed flush is a broken pipe too
            sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`scout-agent check | head`): stop quietly; stdout to /dev/null
        # so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    return code


def _main(argv: Sequence[str] | None) -> int:
    args = build_parser().parse_args(
        _with_default_command(list(sys.argv[1:] if argv is None else argv))
    )
    if args.command == "install":
        return _install(args)
    env_file = env_file_path(args.env_file, os.environ)
    if args.command == "check":
        from scout_agent.check import check

        return check(env_file, sys.stdout)
    try:
        agent = Agent(env_file)
    except ConfigError as exc:
        print(f"scout-agent: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"scout-agent: cannot start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    signal.signal(signal.SIGHUP, lambda *_: agent.request_reload())
    try:
        return agent.run(once=args.once)
    finally:
        agent.close()


def _install(args: argparse.Namespace) -> int:
    from scout_agent.install import InstallError, InstallOptions, install

    if sys.stdin.isatty():
        print("Paste the server's API key and press Enter:", file=sys.stderr)
    key = sys.stdin.readline()
    options = InstallOptions(
        url=args.url,
        env_file=args.env_file,
        ca_file=args.ca_file,
        unit_dir=args.unit_dir,
        bin_dir=args.bin_dir,
        systemd=not args.no_systemd,
        start=not args.no_start,
    )
    try:
        install(options, key, sys.stdout)
    except InstallError as exc:
        print(f"scout-agent install: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"scout-agent install: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
