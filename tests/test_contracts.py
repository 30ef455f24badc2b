"""The checked-in generated code is exactly what the protos generate."""

from __future__ import annotations

import filecmp
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
