"""The OpenAPI 3.1 description of the public API, served at /api/v1/openapi.json.

`openapi.yaml` beside this module is the one source of the contract, written as a document rather
than built by code so that it reads as what clients get. The test suite keeps it true: it is
validated as OpenAPI 3.1, every limit it states is pinned to the constant the code enforces, every
operation is a route the gateway serves (and the other way round), and a property-based run
against real services finds no answer that breaks it.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import yaml

DOCUMENT_FILE = "openapi.yaml"


def load_document() -> dict[str, Any]:
    """The document as written (its `servers` names an example host)."""
    text = resources.files("gateway").joinpath(DOCUMENT_FILE).read_text(encoding="utf-8")
    document: dict[str, Any] = yaml.safe_load(text)
    return document


def build_document(public_url: str) -> dict[str, Any]:
    """The document as this gateway serves it: its own public URL as the only server."""
    document = load_document()
    document["servers"] = [{"url": public_url}]
    return document
