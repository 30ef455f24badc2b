"""Run a gateway replica: `python -m gateway` (settings from the environment)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import uvloop
from aiohttp import web

from gateway.app import create_app, create_plain_http_app, create_ssl_context
from gateway.app_keys import LIFECYCLE, SECURITY_HEADERS
from gateway.runner import GatewayRunner
from gateway.settings import Settings
from scout_kit.heap import freeze_startup_heap
from scout_kit.logging import configure_logging
from scout_kit.settings import SettingsError

log = logging.getLogger("gateway")


async def serve(settings: Settings) -> None:
    runners = []
    app = create_app(settings)
    https = GatewayRunner(
        app,
        problem_headers=app[SECURITY_HEADERS],
        shutdown_timeout=settings.shutdown_grace_seconds,
        access_log=None,
    )
    await https.setup()
    runners.append(https)
    await web.TCPSite(
        https, settings.listen_host, settings.https_port, ssl_context=create_ssl_context(settings)
    ).start()
    log.info("gateway serving HTTPS on %s:%d", settings.listen_host, settings.https_port)
    if settings.http_port:
        plain = GatewayRunner(
            create_plain_http_app(settings), problem_headers=app[SECURITY_HEADERS], access_log=None
        )
        await plain.setup()
        runners.append(plain)
        await web.TCPSite(plain, settings.listen_host, settings.http_port).start()
        log.info("gateway refusing plain HTTP on %s:%d", settings.listen_host, settings.http_port)
    frozen = freeze_startup_heap()
    log.debug("gateway froze %d start-up objects out of the cycle collector", frozen)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await app[LIFECYCLE].drain(settings.shutdown_drain_seconds)
    log.info("gateway stopping: finishing in-flight requests")
    for runner in reversed(runners):
        await runner.cleanup()


def main() -> None:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        raise SystemExit(f"gateway: configuration error: {exc}") from None
    configure_logging("gateway", settings.log_level, settings.log_format)
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
