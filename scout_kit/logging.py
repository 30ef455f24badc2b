"""Structured logging: JSON lines when not on a terminal, each carrying the request id and, while
a trace is recorded, its trace and span ids (so a log line leads to its trace and back)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from opentelemetry import trace

from scout_kit.context import current_request_id
from scout_kit.timestamps import format_epoch

# Attributes every LogRecord has; anything else passed through `extra=` is logged as a field.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


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
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
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
    handler.setFormatter(JsonFormatter(service) if use_json else TextFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiohttp's access log duplicates our own request log line.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
