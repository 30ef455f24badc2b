"""gateway/openapi.yaml is the one source of the API contract: a valid OpenAPI 3.1 document whose
every limit is the constant the code enforces, with what a client generator needs (operation ids,
the CSRF header, the response headers)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from openapi_spec_validator import validate

from auth_service.activity import ActivityType as SignInActivityType
from gateway import metric_query
from gateway.middlewares import CSRF_HEADER
from gateway.openapi import build_document, load_document
from gateway.paging import MAX_PAGE_SIZE, MAX_TYPE_FILTERS
from gateway.server_status import ServerStatus
from key_service.domain import MAX_GRACE_SECONDS
from key_service.models import ActivityType as KeyActivityType
from scout_kit import sample_rules as rules
from scout_kit.context import REQUEST_ID_HEADER
from scout_kit.identity import AuthMethod, PrincipalKind
from scout_kit.text import URL_TEXT_PATTERN

UNSAFE = {"post", "put", "patch", "delete"}
Operation = tuple[str, str, dict[str, Any]]


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_document()


def _ref_parts(ref: str) -> list[str]:
    assert ref.startswith("#/"), ref
    return ref[2:].split("/")


def _deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    seen = 0
    while "$ref" in node:
        seen += 1
        assert seen < 10, "a $ref cycle"
        target: Any = document
        for part in _ref_parts(node["$ref"]):
            target = target[part]
        node = target
    return node


def _operations(document: dict[str, Any]) -> Iterator[Operation]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield method, path, operation


def _at(document: dict[str, Any], *path: str) -> Any:
    node: Any = document
    for part in path:
        node = _deref(document, node) if isinstance(node, dict) else node
        node = node[part]
    return node


def test_it_is_a_valid_openapi_3_1_document(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"].startswith("3.1")
    served = build_document("https://scout.test")
    assert served["servers"] == [{"url": "https://scout.test"}]
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in document.items() if k != "servers"
    }


def test_every_limit_is_the_constant_the_code_enforces(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    metrics = schemas["Sample"]["properties"]["metrics"]
    assert metrics["maxProperties"] == rules.MAX_METRICS_PER_SAMPLE
    assert metrics["propertyNames"]["pattern"] == f"^{rules.METRIC_NAME_PATTERN}$"
    pattern = re.compile(metrics["propertyNames"]["pattern"])
    assert pattern.search("cpu.percent") and not pattern.search("cpu percent")
    ts = schemas["Sample"]["properties"]["ts"]["description"]
    assert f"At most {rules.MAX_FUTURE_MINUTES} minutes in the future" in ts
    assert f"({rules.DEFAULT_RAW_RETENTION_DAYS} days by default)" in ts

    post = document["paths"]["/api/v1/metrics"]["post"]
    samples = post["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert samples["samples"]["maxItems"] == rules.MAX_SAMPLES
    assert f"at most {rules.MAX_BODY_BYTES} bytes" in post["description"]

    query = document["paths"]["/api/v1/servers/{server_id}/metrics"]["get"]["description"]
    assert (
        f"At most {rules.MAX_POINTS_PER_SERIES} buckets per series, "
        f"{rules.MAX_NAMES_PER_QUERY} names and {rules.MAX_POINTS_PER_QUERY} points per query"
    ) in query
    assert f"about {metric_query.DEFAULT_POINTS} points" in query
    parameters = document["paths"]["/api/v1/servers/{server_id}/metrics"]["get"]["parameters"]
    (points,) = [p["schema"] for p in parameters if p.get("name") == "points"]
    assert (points["minimum"], points["maximum"]) == (1, rules.MAX_POINTS_PER_SERIES)

    limit = document["components"]["parameters"]["Limit"]["schema"]
    assert (limit["minimum"], limit["maximum"]) == (1, MAX_PAGE_SIZE)
    rotate = document["paths"]["/api/v1/servers/{server_id}/api-key/rotate"]["post"]
    grace = _at(rotate, "requestBody", "content", "application/json", "schema")
    assert grace["properties"]["grace_seconds"]["maximum"] == MAX_GRACE_SECONDS


def test_every_enumeration_is_the_code_s(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert schemas["Server"]["properties"]["status"]["enum"] == [s.value for s in ServerStatus]
    parameters = document["components"]["parameters"]
    for name, types in (
        ("KeyActivityType", KeyActivityType),
        ("SignInActivityType", SignInActivityType),
    ):
        description = parameters[name]["description"]
        assert f"(at most {MAX_TYPE_FILTERS}): " in description
        listed = description.split("): ", 1)[1].rstrip(".").split(", ")
        assert listed == [t.value for t in types], name
    whoami = _at(
        document["paths"]["/api/v1/whoami"]["get"],
        "responses",
        "200",
        "content",
        "application/json",
        "schema",
        "properties",
    )
    # Services act as themselves only inside the cluster: the public API never answers them.
    assert whoami["kind"]["enum"] == [
        k.value for k in PrincipalKind if k is not PrincipalKind.SERVICE
    ]
    assert whoami["auth_method"]["enum"] == [
        m.value for m in AuthMethod if m is not AuthMethod.SERVICE
    ]


def test_every_operation_has_a_unique_id(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in _operations(document)]
    assert None not in ids
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[a-z][A-Za-z]+", str(i)) for i in ids), ids


def test_session_requests_that_change_things_declare_the_csrf_header(
    document: dict[str, Any],
) -> None:
    csrf = document["components"]["parameters"]["CsrfToken"]
    assert (csrf["in"], csrf["name"]) == ("header", CSRF_HEADER)
    ref = {"$ref": "#/components/parameters/CsrfToken"}
    for method, path, operation in _operations(document):
        by_session = {"session": []} in operation.get("security", document["security"])
        # Login makes the session (and its token): nothing to echo yet.
        wants = method in UNSAFE and by_session and path != "/api/v1/auth/login"
        assert (ref in operation.get("parameters", [])) == wants, (method, path)


def test_every_response_names_its_headers(document: dict[str, Any]) -> None:
    headers = document["components"]["headers"]
    assert set(headers) == {"RequestId", "RetryAfter"}
    for method, path, operation in _operations(document):
        for status, response in operation["responses"].items():
            response = _deref(document, response)
            named = response.get("headers", {})
            assert named.get(REQUEST_ID_HEADER) == {"$ref": "#/components/headers/RequestId"}, (
                method,
                path,
                status,
            )
            if status in {"429", "503"}:
                assert named["Retry-After"] == {"$ref": "#/components/headers/RetryAfter"}


def test_ids_say_what_they_are(document: dict[str, Any]) -> None:
    parameters = document["components"]["parameters"]
    assert parameters["ServerId"]["schema"] == {"type": "string", "format": "uuid"}
    schemas = document["components"]["schemas"]
    assert schemas["Server"]["properties"]["id"]["format"] == "uuid"
    assert schemas["User"]["properties"]["id"]["format"] == "uuid"
    assert schemas["User"]["properties"]["account_id"]["format"] == "uuid"
    session_id = re.compile(schemas["Session"]["properties"]["id"]["pattern"])
    assert session_id.fullmatch("0123456789abcdef0123456789abcdef")


def test_free_text_in_paths_and_queries_follows_the_gateway_s_text_rule(
    document: dict[str, Any],
) -> None:
    """Control characters in a path or query are refused (scout_kit.text): the document says so
    for every parameter whose schema does not already constrain it more."""
    parameters = [
        _deref(document, p)
        for item in document["paths"].values()
        for node in [item, *(op for m, op in item.items() if m != "parameters")]
        for p in node.get("parameters", [])
    ]
    free_text = [
        p
        for p in parameters
        if p["in"] in {"path", "query"}
        and p["schema"].get("type") == "string"
        and not {"enum", "format"} & set(p["schema"])
        and p["schema"].get("pattern") not in {"^[0-9a-f]{32}$"}
    ]
    assert free_text
    for parameter in free_text:
        assert parameter["schema"]["pattern"] == URL_TEXT_PATTERN, parameter["name"]
