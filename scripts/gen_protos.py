"""Generate the importable `scout` contracts package from protos/ (the only way it is made)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE = "scout"
HEADER = '"""Generated gRPC contracts of Server Scout. Do not edit: run `make proto`."""\n'


def generate(out_dir: Path) -> None:
    """Write the generated package for every proto under protos/ into out_dir/scout."""
    import grpc_tools  # imported here so the module loads without the dev extras

    protos = sorted(p.relative_to(PROTOS).as_posix() for p in PROTOS.rglob("*.proto"))
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *protos,
        ]
        subprocess.run(cmd, check=True, cwd=PROTOS)
        target = out_dir / PACKAGE
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(Path(tmp) / PACKAGE, target)
    for directory in [target, *(d for d in target.rglob("*") if d.is_dir())]:
        (directory / "__init__.py").write_text(HEADER)
    (target / "py.typed").write_text("")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT, help="directory that receives scout/")
    args = parser.parse_args()
    generate(args.out)


if __name__ == "__main__":
    main()
