"""Build the single-file agent: `dist/scout-agent.pyz`, runnable by any Python 3.9+.

    python scripts/build_agent.py [--output PATH]
    python3 dist/scout-agent.pyz install --url https://scout.example.com < key.txt

The archive holds the `scout_agent` package (standard library only) and a `__main__` that calls
its command line; `install` copies the archive to /opt/scout-agent/ and points the unit at it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scout_agent.archive import build_archive  # noqa: E402 (the checkout, not an install)

DEFAULT_OUTPUT = ROOT / "dist" / "scout-agent.pyz"


def build(output: Path = DEFAULT_OUTPUT) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_bytes(build_archive())
    os.chmod(output, 0o755)  # noqa: S103 (a program, run by anyone who may read it)
    return output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args()
    path = build(args.output)
    print(f"built {path} ({path.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
