"""Vendored front-end libraries: fetch them from the npm registry at pinned versions, or check
them against their manifest.

    python scripts/vendor_assets.py            # check every vendored file (offline; CI does it)
    python scripts/vendor_assets.py --fetch    # re-extract every package at its pinned version
    python scripts/vendor_assets.py --fetch --set uplot@1.6.33   # move one package's pin

`scripts/vendor.json` pins each package (name, version, the registry's sha512 integrity of the
tarball), the files taken from it with their SHA-256, and where they go. `--fetch` runs
`npm pack NAME@VERSION` (the registry's own tarball), refuses a tarball whose integrity differs
from the pin (a new pin takes the integrity npm reports for the version asked for), extracts only
the listed files (and the licence) and records their hashes. Nothing is ever fetched at run time.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "scripts" / "vendor.json"


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_manifest(path: Path = MANIFEST) -> list[dict[str, Any]]:
    packages: list[dict[str, Any]] = json.loads(path.read_text())["packages"]
    return packages


def check(root: Path = ROOT, manifest: Path = MANIFEST) -> list[str]:
    """Every way the vendored files differ from the manifest (empty when they agree)."""
    problems: list[str] = []
    for package in load_manifest(manifest):
        dest = root / package["dest"]
        for name, expected in package["files"].items():
            path = dest / name
            if not path.is_file():
                problems.append(f"{package['name']}: {path.relative_to(root)} is missing")
            elif sha256_file(path) != expected:
                problems.append(f"{package['name']}: {path.relative_to(root)} has changed")
        listed = set(package["files"])
        present = {p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()}
        for extra in sorted(present - listed):
            problems.append(f"{package['name']}: {package['dest']}/{extra} is not in the manifest")
    return problems


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _npm_pack(name: str, version: str) -> tuple[bytes, str]:
    """The package's registry tarball and the integrity npm reports for it."""
    with tempfile.TemporaryDirectory() as tmp:
        result = subprocess.run(
            ["npm", "pack", f"{name}@{version}", "--json", "--pack-destination", tmp],
            check=True,
            capture_output=True,
            text=True,
        )
        packed = json.loads(result.stdout)[0]
        return (Path(tmp) / packed["filename"]).read_bytes(), packed["integrity"]


def fetch(package: dict[str, Any], root: Path = ROOT) -> None:
    """Re-extract one package's listed files at its pinned version, checking its integrity."""
    tarball, reported = _npm_pack(package["name"], package["version"])
    actual = _integrity(tarball)
    pinned = package.get("integrity") or reported
    if actual != pinned or reported != pinned:
        raise SystemExit(
            f"{package['name']}@{package['version']}: integrity {actual} does not match the pin "
            f"{pinned}; refusing to vendor it"
        )
    package["integrity"] = pinned
    dest = root / package["dest"]
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
        for name in package["files"]:
            source = package.get("source", {}).get(name, name)
            member = archive.extractfile(f"package/{source}")
            if member is None:
                raise SystemExit(f"{package['name']}: {name} is not in the tarball")
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
            package["files"][name] = sha256_file(target)
    print(f"vendored {package['name']}@{package['version']} into {package['dest']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fetch", action="store_true", help="re-extract from the npm registry")
    parser.add_argument("--set", metavar="NAME@VERSION", help="with --fetch: move one pin")
    args = parser.parse_args()
    if not args.fetch:
        problems = check()
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python scripts/vendor_assets.py --fetch", file=sys.stderr)
        return 1 if problems else 0
    document = json.loads(MANIFEST.read_text())
    for package in document["packages"]:
        if args.set:
            name, _, version = args.set.rpartition("@")
            if name != package["name"]:
                continue
            package["version"], package["integrity"] = version, ""
        fetch(package)
    MANIFEST.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
