"""Filters of listings: a requested set of values checked against the values that exist."""

from __future__ import annotations

from collections.abc import Iterable


class UnknownValues(ValueError):
    """A filter names a value that does not exist; the message lists the known ones."""


def known_values(requested: Iterable[str], known: Iterable[str], what: str) -> list[str]:
    """The requested values, once each and sorted (none: no filter); unknown ones refused."""
    allowed = set(known)
    wanted = set(requested)
    unknown = sorted(wanted - allowed)
    if unknown:
        raise UnknownValues(
            f"unknown {what} {unknown[0][:60]!r}; known: {', '.join(sorted(allowed))}"
        )
    return sorted(wanted)
