"""Every problem `type` the API answers resolves to documentation the gateway serves, generated
from the one list of problem types."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path
from urllib.parse import urljoin

from gateway.problems import PROBLEM_TYPE_BASE, PROBLEM_TYPES
from tests.stack import Environment, client_session, running_stack

ROOT = Path(__file__).resolve().parents[2]


def problem_types_in_code() -> set[str]:
    """Every literal `type_="..."` and `unauthorized(detail, "...")` in the gateway."""
    found = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            for keyword in node.keywords:
                if keyword.arg == "type_" and isinstance(keyword.value, ast.Constant):
                    found.add(str(keyword.value.value))
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            if name == "unauthorized" and len(node.args) == 2:
                argument = node.args[1]
                assert isinstance(argument, ast.Constant), f"{path}: a literal type, please"
                found.add(str(argument.value))
    return found


def test_every_type_the_code_answers_is_documented() -> None:
    used = problem_types_in_code() | {"unauthenticated"}  # unauthorized()'s default
    assert used == set(PROBLEM_TYPES), (
        f"undocumented: {sorted(used - set(PROBLEM_TYPES))}, "
        f"unused: {sorted(set(PROBLEM_TYPES) - used)}"
    )


def test_the_pages_are_generated_from_the_list_and_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_problem_docs.py"), "--check"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


async def test_a_problems_type_resolves_to_its_page(env: Environment) -> None:
    async with running_stack(env) as stack, client_session(env) as http:
        async with http.get(f"{stack.gateway.url}/api/v1/whoami") as response:
            assert response.status == 401
            problem = await response.json(content_type="application/problem+json")
        assert problem["type"] == PROBLEM_TYPE_BASE + "unauthenticated"
        page_url = urljoin(str(response.url), problem["type"])  # RFC 9457: a URI reference
        async with http.get(page_url) as page:
            assert page.status == 200
            assert page.content_type == "text/html"
            assert "default-src 'none'" in page.headers["Content-Security-Policy"]
            text = await page.text()
        assert PROBLEM_TYPES["unauthenticated"].title in text
        for name in ("", *PROBLEM_TYPES, "problem.css"):
            async with http.get(f"{stack.gateway.url}{PROBLEM_TYPE_BASE}{name}") as page:
                assert page.status == 200, name
        async with http.get(f"{stack.gateway.url}{PROBLEM_TYPE_BASE}no-such-type") as missing:
            assert missing.status == 404
            assert missing.content_type == "application/problem+json"
