"""pytest plugin (`-p tests.log_secrets`): every log record of the whole suite is captured, and a
test fails if one carries a secret it created.

The secrets are recorded where they are made: every `secrets.token_hex` and
`secrets.token_urlsafe` of 32 bytes or more (API keys, session and CSRF tokens, whether the
services or the test made them), plus what a test registers (`register_secret`, e.g. the
passwords it signs in with). Records are checked as logged, before any redaction: a secret that
only the production filter (scout_kit.logging.RedactingFilter) would have masked still fails.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from collections.abc import Callable, Iterator

import pytest

SECRET_BYTES = 32  # secrets.token_*() with no argument gives 32 bytes too
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}

_created: set[str] = set()
_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Fail any test that logs `value` (for secrets not made by `secrets.token_*`)."""
    _registered.add(value)


def _recording(generate: Callable[[int | None], str]) -> Callable[[int | None], str]:
    def recorded(nbytes: int | None = None) -> str:
        value = generate(nbytes)
        if nbytes is None or nbytes >= SECRET_BYTES:
            _created.add(value)
        return value

    return recorded


def _text(record: logging.LogRecord) -> str:
    try:
        parts = [record.getMessage()]
    except Exception:  # a record whose arguments do not format still has them
        parts = [str(record.msg), repr(record.args)]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    parts += [record.exc_text or "", record.stack_info or ""]
    parts += [repr(v) for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS]
    return "\n".join(parts)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, _text(record)))


_recorder = _Recorder()


def pytest_configure(config: pytest.Config) -> None:
    secrets.token_hex = _recording(secrets.token_hex)  # type: ignore[assignment]
    secrets.token_urlsafe = _recording(secrets.token_urlsafe)  # type: ignore[assignment]
    root = logging.getLogger()
    root.addHandler(_recorder)
    # Every record is created, so that a secret in a debug line fails too.
    root.setLevel(logging.DEBUG)


def leaks(lines: list[tuple[str, str]], created: set[str]) -> list[str]:
    """Where each of `created` that a line carries leaked (the report shows only its tail)."""
    return [
        f"{name}: {text.replace(secret, f'<secret ...{secret[-4:]}>')[:300]!r}"
        for name, text in lines
        for secret in created
        if secret in text
    ]


@pytest.fixture(autouse=True)
def _no_secret_in_logs() -> Iterator[None]:
    _created.clear()
    _recorder.lines.clear()
    yield
    created = _created | _registered
    found = leaks(_recorder.lines, created)
    _recorder.lines.clear()
    if found:
        pytest.fail("a secret the test created was logged:\n" + "\n".join(found[:10]))
