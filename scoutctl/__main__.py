"""`scoutctl`: the Server Scout command line (see `scoutctl --help`)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from scoutctl.cli import run


def main(argv: Sequence[str] | None = None) -> int:
    return run(list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
