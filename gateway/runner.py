"""The gateway's HTTP server: aiohttp's own error answers and log lines replaced by ours.

aiohttp answers a request its parser rejects (a bad request line, bytes a header may not hold,
a header over the size limit) itself, before any middleware: a text/plain page that quotes the
offending bytes, without our security headers, and an ERROR log line whose exception text is the
raw request, API key or session cookie included. `GatewayRunner` serves an application with a
request handler whose `handle_error` answers problem+json with the app's security headers and
logs only the kind of error and the peer; `SERVER_HEADER` replaces aiohttp's version banner.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import (
    BadHttpMethod,
    BadStatusLine,
    ContentLengthError,
    HttpProcessingError,
    InvalidHeader,
    InvalidURLError,
    LineTooLong,
    TransferEncodingError,
)

from gateway.problems import Problem

log = logging.getLogger("gateway.access")

# The `Server` header every answer carries: the product, never a version.
SERVER_HEADER = "Server Scout"

# What a rejected request was, in words that quote nothing of it (the order matters: the first
# class an exception is an instance of names it).
_PARSE_ERRORS: tuple[tuple[type[HttpProcessingError], str], ...] = (
    (LineTooLong, "The request line or a header is longer than this server accepts."),
    (BadHttpMethod, "The request method is not valid HTTP."),
    (BadStatusLine, "The request line is not valid HTTP/1.1."),
    (InvalidURLError, "The request target is not a valid URL."),
    (InvalidHeader, "A request header is malformed or holds bytes a header may not hold."),
    (ContentLengthError, "The body is shorter or longer than Content-Length says."),
    (TransferEncodingError, "The body's chunked encoding is malformed."),
)
_MALFORMED = "The request is not valid HTTP/1.1."


def describe_parse_error(exc: BaseException | None) -> str:
    """A public description of why the HTTP parser refused a request (no byte of it)."""
    for kind, description in _PARSE_ERRORS:
        if isinstance(exc, kind):
            return description
    return _MALFORMED


async def _on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = SERVER_HEADER


def install_server_header(app: web.Application) -> None:
    """Every routed answer of `app` (found or not) says only `Server: Server Scout`. The HTTPS
    app sets it in its edge middleware instead (gateway.middlewares), which every answer of
    it passes."""
    app.on_response_prepare.append(_on_response_prepare)


class _RequestHandler(web_protocol.RequestHandler):
    """aiohttp's connection handler with the gateway's answers to what never reaches the app."""

    problem_headers: tuple[tuple[str, str], ...] = ()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            # Part of an answer is on the wire: the connection can only be dropped.
            raise ConnectionError("response already started; closing the connection")
        if status == 400:
            problem = Problem(
                400, "Bad Request", describe_parse_error(exc), type_="malformed-request"
            )
            # INFO: an anonymous client can send these at will; the exception text (the raw
            # request) is never logged.
            log.info(
                "malformed HTTP request from %s: %s",
                request.remote,
                type(exc).__name__ if exc is not None else "unknown",
                extra={"http_status": 400, "client_address": request.remote},
            )
        elif status == 504:
            problem = Problem(
                504, "Gateway Timeout", "The request took too long.", type_="service-unavailable"
            )
        else:
            log.error("unhandled error outside the application", exc_info=exc)
            problem = Problem(500, "Internal Server Error", "Something went wrong on our side.")
        response = problem.response()
        for name, value in self.problem_headers:
            response.headers.setdefault(name, value)
        response.headers["Server"] = SERVER_HEADER
        response.force_close()
        return response


class _Server(web.Server):
    def __init__(
        self, server: web.Server, problem_headers: tuple[tuple[str, str], ...], **kwargs: Any
    ) -> None:
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            **kwargs,
        )
        self._problem_headers = problem_headers

    def __call__(self) -> web_protocol.RequestHandler:
        handler = _RequestHandler(self, loop=self._loop, **self._kwargs)
        handler.problem_headers = self._problem_headers
        return handler


class GatewayRunner(web.AppRunner):
    """`web.AppRunner` whose connections answer malformed requests with problem+json carrying
    `problem_headers` (the app's security headers), and log none of their bytes."""

    def __init__(
        self,
        app: web.Application,
        *,
        problem_headers: tuple[tuple[str, str], ...] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._problem_headers = problem_headers

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return _Server(server, self._problem_headers, **server._kwargs)
