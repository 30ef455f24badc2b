"""`make run`: the whole system on this machine (`python -m devstack --gateways N ...`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path

import psycopg2
import redis.exceptions

from devstack.binaries import MissingBinaries
from devstack.ports import PortTaken
from devstack.postgres import PostgresError
from devstack.processes import LogPrinter, terminal_printer
from devstack.readiness import NotReady, Unreachable
from devstack.redis_server import RedisStartError
from devstack.stack import Options, run_stack
from devstack.topology import ReplicaCounts
from scout_kit.grpc_server import unreachable_dependency
from scout_kit.settings import SettingsError

log = logging.getLogger("devstack")

# Failures with a message that says it all: printed without a traceback.
_EXPLAINED = (
    MissingBinaries,
    PostgresError,
    RedisStartError,
    NotReady,
    SettingsError,
    Unreachable,
)


def replica_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 1 <= value <= 32:
        raise argparse.ArgumentTypeError("must be between 1 and 32")
    return value


def port_number(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError("must be between 0 and 65535")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=(
            "Run Server Scout locally: every service and gateway replica, with private PostgreSQL "
            "and Redis unless DATABASE_URL / REDIS_URL are set. Ctrl-C stops everything."
        ),
    )
    for flag, noun in (
        ("--gateways", "gateway"),
        ("--auth", "auth service"),
        ("--keys", "key service"),
        ("--ingest", "ingest service"),
    ):
        parser.add_argument(
            flag, type=replica_count, default=1, metavar="N", help=f"{noun} replicas (default 1)"
        )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(".dev"),
        help="certificates, keys, database files and demo credentials (default .dev/)",
    )
    parser.add_argument(
        "--rotate-demo-key",
        action="store_true",
        help="give demo-server a new API key (the old one stops working) and print it",
    )
    parser.add_argument(
        "--https-port",
        type=port_number,
        metavar="PORT",
        help="the first gateway's HTTPS port, the next ones follow (default: the last run's, "
        "else 8443; 0: any free port)",
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long each replica may take to become ready (default 60)",
    )
    return parser


def options_from(args: argparse.Namespace) -> Options:
    return Options(
        counts=ReplicaCounts(
            gateways=args.gateways, auth=args.auth, keys=args.keys, ingest=args.ingest
        ),
        data_dir=args.data_dir,
        rotate_demo_key=args.rotate_demo_key,
        ready_timeout=args.ready_timeout,
        https_port=args.https_port,
    )


class PrinterHandler(logging.Handler):
    """The orchestrator's own messages, aligned with its children's prefixed output."""

    def __init__(self, printer: LogPrinter) -> None:
        super().__init__()
        self._printer = printer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._printer.line("devstack", self.format(record))
        except Exception:
            self.handleError(record)


async def serve(options: Options, environ: Mapping[str, str], printer: LogPrinter) -> int:
    """run_stack, stopped in order by the first SIGINT or SIGTERM (exit status 0)."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    received: list[signal.Signals] = []

    def on_signal(sig: signal.Signals) -> None:
        if received:
            log.info("already stopping; please wait")
            return
        received.append(sig)
        log.info("received %s: stopping everything", sig.name)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        return await run_stack(options, environ, printer)
    except asyncio.CancelledError:
        if not received:
            raise
        task.uncancel()
        log.info("stopped")
        return 0
    except _EXPLAINED as exc:
        log.error("%s", exc)
        return 1
    except PortTaken as exc:
        log.error("%s; choose another with `make run HTTPS_PORT=...` (or --https-port)", exc)
        return 1
    except (psycopg2.Error, redis.exceptions.RedisError) as exc:
        log.error("%s", unreachable_dependency(exc))
        return 1
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def main(argv: list[str] | None = None) -> None:
    options = options_from(build_parser().parse_args(argv))
    printer = terminal_printer(os.environ)
    printer.widen(["devstack"])
    handler = PrinterHandler(printer)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    sys.exit(asyncio.run(serve(options, dict(os.environ), printer)))


if __name__ == "__main__":
    main()
