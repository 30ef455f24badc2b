"""The agent's env file: `NAME=value` lines, read strictly and rewritten atomically.

Shared by the agent (reading, `install`) and scoutctl (`key rotate --update-env`), so both agree
on the format: blank lines and `#` comments are kept as they are, `export NAME=value` is accepted,
and a value may be wrapped in single or double quotes.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat

_LINE = re.compile(r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


class EnvFileError(Exception):
    """The file cannot be parsed; the message names the line."""


def parse(text: str, path: str = "the env file") -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            raise EnvFileError(f"{path} line {number} is not NAME=value")
        values[match.group(2)] = _unquote(match.group(3))
    return values


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        return raw[1:-1]
    return raw


def set_values(text: str, updates: dict[str, str]) -> str:
    """`text` with each NAME in `updates` set: lines that assign it are rewritten in place (the
    first kept, later duplicates removed), the others appended; everything else is unchanged."""
    out: list[str] = []
    done: dict[str, bool] = {}
    for line in text.splitlines():
        match = _LINE.match(line) if line.strip() and not line.strip().startswith("#") else None
        name = match.group(2) if match else None
        if match is not None and name in updates:
            if done.get(name):
                continue
            out.append(f"{match.group(1) or ''}{name}={updates[name]}")
            done[name] = True
            continue
        out.append(line)
    for name, value in updates.items():
        if not done.get(name):
            out.append(f"{name}={value}")
    return "\n".join(out) + "\n"


def write_atomic(path: str, text: str, mode: int, owner: tuple[int, int] | None = None) -> None:
    """Replace `path` with `text` so a reader sees the old file or the new one, never a mix: a
    temporary file in the same directory gets the mode and owner first, then the content, is
    fsynced, renamed over `path`, and the directory is fsynced."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    temporary = os.path.join(directory, f".{base}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            if owner is not None:
                os.fchown(fd, owner[0], owner[1])
            os.fchmod(fd, mode)
            data = text.encode("utf-8")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def update_file(path: str, updates: dict[str, str]) -> None:
    """Set values in an existing env file atomically, keeping its mode, owner and other lines."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EnvFileError(f"{path} is not a regular file")
        with os.fdopen(os.dup(fd), "r", encoding="utf-8") as handle:
            text = handle.read()
    finally:
        os.close(fd)
    parse(text, path)
    write_atomic(
        path, set_values(text, updates), stat.S_IMODE(info.st_mode), (info.st_uid, info.st_gid)
    )
