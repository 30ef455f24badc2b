"""The agent as one file: a zip application of this package, runnable by any Python 3.9+.

Built the same way byte for byte whenever the package is the same (sorted names, fixed times),
so `scripts/build_agent.py` and the gateway's download (`/downloads/scout-agent.pyz`) agree.
"""

import io
import zipfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
SHEBANG = b"#!/usr/bin/env python3\n"
MAIN = "import sys\nfrom scout_agent.__main__ import main\n\nsys.exit(main())\n"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_EPOCH)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def build_archive() -> bytes:
    """The archive: the package's modules under scout_agent/ and a __main__ calling its CLI."""
    buffer = io.BytesIO()
    buffer.write(SHEBANG)
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(_entry("__main__.py"), MAIN)
        for path in sorted(PACKAGE.rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                name = "scout_agent/" + path.relative_to(PACKAGE).as_posix()
                archive.writestr(_entry(name), path.read_bytes())
    return buffer.getvalue()
