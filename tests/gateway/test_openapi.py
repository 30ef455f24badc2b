"""The OpenAPI document is served, lists every route the gateway serves, and a bounded
property-based run (schemathesis) against a real stack finds no 5xx and no answer outside it."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ensure_resource_availability,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
    use_after_free,
)

from gateway.dashboard import PAGE_ROUTE_PREFIX as DASHBOARD_ROUTES
from tests.gateway.metrics_support import SESSION_COOKIE, body, sign_in, stack_clock
from tests.live_stack import new_account, on_background_loop
from tests.stack import Environment, client_session, running_stack

EXAMPLES_PER_OPERATION = 20


def _template(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


async def test_every_served_route_is_documented(env: Environment) -> None:
    async with running_stack(env) as stack, client_session(env) as http:
        async with http.get(f"{stack.gateway.url}/api/v1/openapi.json") as response:
            assert response.status == 200
            document = await response.json()
        assert document["openapi"].startswith("3.1")
        documented = {
            (method.upper(), _template(path))
            for path, item in document["paths"].items()
            for method in item
            if method != "parameters"
        }
        served = set()
        for route in stack.gateway.app.router.routes():
            info = route.resource.get_info() if route.resource else {}
            path = info.get("path") or info.get("formatter")
            # The dashboard's pages and files are not the API (tests/dashboard covers them).
            if route.method == "HEAD" or (route.name or "").startswith(DASHBOARD_ROUTES):
                continue
            served.add((route.method, _template(str(path))))
        assert served - documented == set()
        assert documented - served == set()
        schemes = document["components"]["securitySchemes"]
        assert schemes["apiKey"] == {**schemes["apiKey"], "in": "header", "name": "X-API-Key"}
        assert schemes["session"]["name"] == SESSION_COOKIE


@dataclass
class _Running:
    url: str
    document: dict[str, Any]
    api_key: str
    server_id: str
    session_headers: dict[str, str]
    session_cookie: dict[str, str]


@pytest.fixture
def live_stack(env: Environment) -> Iterator[_Running]:
    """A real stack served from a background thread's event loop, so a synchronous test can
    drive it with schemathesis' requests-based client."""

    @contextlib.asynccontextmanager
    async def serve() -> AsyncIterator[_Running]:
        clock = stack_clock()
        account = await new_account(env)
        async with (
            running_stack(env, clock=clock) as stack,
            client_session(env, cookie_jar=aiohttp.DummyCookieJar()) as http,
        ):
            url = stack.gateway.url
            async with http.post(
                f"{url}/api/v1/metrics",
                json=body((clock.now().timestamp(), {"cpu": 1.0})),
                headers={"X-API-Key": account.created.api_key},
            ) as response:
                assert response.status == 202
            headers = await sign_in(http, url, account.email)
            async with http.get(f"{url}/api/v1/openapi.json") as response:
                document = await response.json()
            yield _Running(
                url,
                document,
                account.created.api_key,
                account.created.server.id,
                {"X-CSRF-Token": headers["X-CSRF-Token"]},
                {SESSION_COOKIE: headers["Cookie"].split("=", 1)[1]},
            )

    with on_background_loop(serve) as running:
        yield running


# Every check but positive_data_acceptance, which cannot hold for rules a schema cannot state
# (a sample's time within the retention, one credential per request).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    negative_data_rejection,
    missing_required_header,
    unsupported_method,
    ignored_auth,
    use_after_free,
    ensure_resource_availability,
    allow_header_conformance,
]


def _fuzz(operation: Any, running: _Running, http: requests.Session, ca_file: str) -> None:
    """A bounded hypothesis run of one operation with the credentials it documents."""
    security = operation.definition.raw.get("security", running.document["security"])
    names = {name for requirement in security for name in requirement}
    # Operations open to both are fuzzed with the key; those only a session may call get the
    # session (logout may end it: later answers are then documented 401s).
    use_session = names == {"session"}
    real_server = [False]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def fuzz(case: Any) -> None:
        headers = dict(case.headers or {})
        cookies: dict[str, str] = {}
        if use_session:
            headers.update(running.session_headers)
            cookies = running.session_cookie
        elif names:
            headers["X-API-Key"] = running.api_key
        # Every other case reads the real server, so success answers are checked too.
        real_server[0] = not real_server[0]
        if case.path_parameters and "server_id" in case.path_parameters and real_server[0]:
            case.path_parameters["server_id"] = running.server_id
        response = case.call(
            base_url=running.url,
            session=http,
            headers=headers,
            cookies=cookies,
            timeout=30,
            verify=ca_file,
        )
        # The checks that send requests of their own send them as this one was sent.
        case.validate_response(
            response,
            checks=CHECKS,
            headers=headers,
            transport_kwargs={"verify": ca_file, "cookies": cookies, "headers": headers},
        )

    fuzz()


def test_fuzzing_finds_no_server_error_and_no_undocumented_answer(
    live_stack: _Running, env: Environment
) -> None:
    schema = schemathesis.openapi.from_dict(live_stack.document)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 20
    with requests.Session() as http:
        for operation in operations:
            _fuzz(operation, live_stack, http, env.ca_file)
