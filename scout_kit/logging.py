"""Structured logging: JSON lines when not on a terminal, each carrying the request id and, while
a trace is recorded, its trace and span ids (so a log line leads to its trace and back).

Every line passes `RedactingFilter` first: whatever looks like a credential (an API key, a
session or CSRF token, an internal token, the value of a credential header, cookie or password
field) is masked wherever it appears, in the message, the traceback or an extra field. aiohttp's
own loggers additionally never log the exception of a request its parser refused, whose text is
the raw request."""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from opentelemetry import trace

from scout_kit.context import current_request_id
from scout_kit.timestamps import format_epoch

# Attributes every LogRecord has; anything else passed through `extra=` is logged as a field.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


REDACTED = "[redacted]"

# Credentials by shape: API keys (64 hex), session and CSRF tokens (token_urlsafe(32): 43
# base64url characters), internal JWTs. The runs are bounded on both sides so that a longer
# identifier is not cut; a key repeated back to back is one run of a multiple of 64.
_SECRET_SHAPES = re.compile(
    r"(?<![0-9A-Za-z_-])(?:(?:[0-9a-fA-F]{64})+|[A-Za-z0-9_-]{43})(?![0-9A-Za-z_-])"
    r"|eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"
)
# Credentials by name: the value after a credential header, cookie or field name.
_NAMED_SECRETS = re.compile(
    r"(?i)((?:x-api-key|api[_-]?key|(?:proxy-)?authorization|set-cookie|cookie|__host-scout_session"
    r"|[a-z_]*password|[a-z_]*secret|[a-z_]*token)[\"']?\s*[:=]\s*[\"']?)"
    r"(?:(?:bearer|basic)\s+)?([^\s\"',;&}]+)"
)


def redact(text: str) -> str:
    """`text` with everything that looks like a credential replaced by [redacted]."""
    text = _NAMED_SECRETS.sub(lambda m: m.group(1) + REDACTED, text)
    return _SECRET_SHAPES.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Masks credentials in a record before any handler formats it (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD_ATTRS and isinstance(value, str):
                setattr(record, key, redact(value))
        return True


class RawRequestFilter(logging.Filter):
    """On aiohttp's loggers: a request its HTTP parser refused is logged by kind, without the
    exception, whose text quotes the raw request line and headers."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.msg, record.args = "malformed HTTP request refused: %s", (type(exc).__name__,)
            record.exc_info = record.exc_text = None
        return True


# aiohttp's loggers that may see a raw request.
AIOHTTP_SERVER_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "aiohttp.internal")


class RequestIdFilter(logging.Filter):
    """Adds `request_id`, and `trace_id` / `span_id` of the current span (None outside one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        if not hasattr(record, "trace_id"):
            context = trace.get_current_span().get_span_context()
            if context.is_valid:
                record.trace_id = format(context.trace_id, "032x")
                record.span_id = format(context.span_id, "016x")
            else:
                record.trace_id = record.span_id = None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": format_epoch(record.created),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD_ATTRS and value is not None:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s {service} %(name)s %(ids)s%(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return format_epoch(record.created)

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        trace_id = getattr(record, "trace_id", None)
        ids = [f"request_id={request_id}"] if request_id else []
        ids += [f"trace_id={trace_id}"] if trace_id else []
        record.ids = f"[{' '.join(ids)}] " if ids else ""
        return super().format(record)


def configure_logging(service: str, level: str = "info", fmt: str = "auto") -> None:
    """Set up the root logger once, at process start (never at import)."""
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(RedactingFilter())
    handler.setFormatter(JsonFormatter(service) if use_json else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our own request log line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    for name in AIOHTTP_SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RawRequestFilter) for f in logger.filters):
            logger.addFilter(RawRequestFilter())
