"""The checked-in generated code is exactly what the protos generate."""

from __future__ import annotations

import filecmp
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from gen_protos import generate  # noqa: E402


def _files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_matches_protos(tmp_path: Path) -> None:
    generate(tmp_path)
    fresh, checked_in = tmp_path / "scout", ROOT / "scout"
    assert _files(fresh) == _files(checked_in), "run `make proto` and commit the result"
    mismatched = [
        name
        for name in sorted(_files(fresh))
        if not filecmp.cmp(fresh / name, checked_in / name, shallow=False)
    ]
    assert not mismatched, f"generated code is stale, run `make proto`: {mismatched}"


@pytest.mark.parametrize("service", ["auth", "keys", "ingest"])
def test_every_service_has_a_versioned_contract(service: str) -> None:
    proto = ROOT / "protos" / "scout" / service / "v1" / f"{service}.proto"
    assert f"package scout.{service}.v1;" in proto.read_text()


def _floor(requirement: str) -> tuple[int, ...]:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(rf'"{requirement}>=([0-9.]+)"', text)
    assert match, f"pyproject.toml must pin a floor for {requirement}"
    return tuple(int(part) for part in match.group(1).split("."))


def test_declared_floors_cover_what_the_generated_code_needs() -> None:
    grpc_module = (ROOT / "scout" / "keys" / "v1" / "keys_pb2_grpc.py").read_text()
    generated_grpc = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", grpc_module)
    assert generated_grpc
    assert _floor("grpcio") >= tuple(int(p) for p in generated_grpc.group(1).split("."))
    pb2 = (ROOT / "scout" / "keys" / "v1" / "keys_pb2.py").read_text()
    runtime = re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", pb2)
    assert runtime
    assert _floor("protobuf") >= tuple(int(p) for p in runtime.groups())
    tools = re.search(r'"grpcio-tools==([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert tools, "grpcio-tools is pinned exactly, so regeneration is reproducible"
    assert tools.group(1) == generated_grpc.group(1)
