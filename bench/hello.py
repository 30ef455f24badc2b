"""The baseline: a bare aiohttp hello over TLS, `python -m bench.hello` (gateway's environment).

It reads the gateway's own settings and builds its TLS context with the gateway's
`create_ssl_context`, and runs like `python -m gateway` (one process, one uvloop event loop, no
access log), so the only difference the ratio sees is what the gateway does per request.
"""

from __future__ import annotations

import asyncio
import os
import signal

import uvloop
from aiohttp import web

from gateway.app import create_ssl_context
from gateway.settings import Settings
from scout_kit.heap import freeze_startup_heap

BODY = b"Hello, World!"


async def hello(request: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="text/plain")


def create_hello_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/", hello)
    return app


async def serve(settings: Settings) -> None:
    runner = web.AppRunner(create_hello_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(
        runner, settings.listen_host, settings.https_port, ssl_context=create_ssl_context(settings)
    ).start()
    freeze_startup_heap()  # as the gateway does once it listens
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    await runner.cleanup()


def main() -> None:
    # The same event loop as `python -m gateway`, so the ratio compares like with like.
    uvloop.run(serve(Settings.from_env(os.environ)))


if __name__ == "__main__":
    main()
