"""Freezing the start-up heap: garbage is collected first, what is alive is frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from scout_kit.heap import freeze_startup_heap


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_garbage_is_collected_and_what_lives_is_frozen(unfrozen: None) -> None:
    a, b = _Node(), _Node()
    a.other, b.other = b, a  # a cycle only the collector can free
    cycle = weakref.ref(a)
    del a, b
    kept = [_Node()]
    frozen = freeze_startup_heap()
    assert cycle() is None
    assert frozen == gc.get_freeze_count() > 0
    assert not any(obj is kept for obj in gc.get_objects())  # out of the collector's sight
