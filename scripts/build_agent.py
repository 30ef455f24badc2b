"""Build the single-file agent: `dist/scout-agent.pyz`, runnable by any Python 3.9+.

    python scripts/build_agent.py [--output PATH]
    python3 dist/scout-agent.pyz install --url https://scout.example.com < key.txt

The archive holds the `scout_agent` package (standard library only) and a `__main__` that calls
its command line; `install` copies the archive to /opt/scout-agent/ and points the unit at it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import zipapp
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "scout_agent"
DEFAULT_OUTPUT = ROOT / "dist" / "scout-agent.pyz"
MAIN = "import sys\nfrom scout_agent.__main__ import main\n\nsys.exit(main())\n"


def build(output: Path = DEFAULT_OUTPUT) -> Path:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        target = Path(staging) / "scout_agent"
        shutil.copytree(PACKAGE, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (Path(staging) / "__main__.py").write_text(MAIN)
        zipapp.create_archive(staging, output, interpreter="/usr/bin/env python3", compressed=True)
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
