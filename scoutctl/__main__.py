"""`scoutctl`: the Server Scout command line (see `scoutctl --help`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from scoutctl.cli import run

# What a program killed by SIGPIPE exits with, as `grep` or `cat` would when `| head` stops.
EXIT_BROKEN_PIPE = 128 + 13


def main(argv: Sequence[str] | None = None) -> int:
    try:
        code = run(list(sys.argv[1:] if argv is None else argv))
        sys.stdout.flush()
    except BrokenPipeError:
        return broken_pipe()
    return code


def broken_pipe() -> int:
    """The reader of our output went away (`scoutctl ... | head`): stop quietly. stdout goes to
    /dev/null so the interpreter's final flush does not fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
