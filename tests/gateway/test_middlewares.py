"""The edge's error mapping, for what needs no running gateway."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from gateway.middlewares import error_response


def test_a_redirect_is_answered_as_a_redirect_not_an_error() -> None:
    # Answered (not raised past the edge), so it carries the edge's headers like any answer.
    request = make_mocked_request("GET", "/dashboard")
    response = error_response(request, web.HTTPFound("/dashboard/"))
    assert response.status == 302
    assert response.headers["Location"] == "/dashboard/"
    assert response.content_type != "application/problem+json"


def test_an_http_error_is_problem_json() -> None:
    request = make_mocked_request("GET", "/nowhere")
    response = error_response(request, web.HTTPNotFound())
    assert response.status == 404
    assert response.content_type == "application/problem+json"
