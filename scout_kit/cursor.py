"""The part of an aiopg cursor the repositories use, as a Protocol: what a helper that runs
statements on a caller's cursor (inside the caller's transaction) depends on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

# A row's columns are whatever the statement selects; PostgreSQL types them, not Python.
Row = tuple[object, ...]
Parameters = Sequence[object] | Mapping[str, object] | None


class Cursor(Protocol):
    async def execute(self, operation: str, parameters: Parameters = None) -> None: ...

    async def fetchone(self) -> Row | None: ...

    async def fetchall(self) -> list[Row]: ...
