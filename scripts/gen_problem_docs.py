"""Write the problem-type pages the gateway serves at /problems/<type> (static HTML).

    .venv/bin/python scripts/gen_problem_docs.py [--check]

They are generated from `gateway.problems.PROBLEM_TYPES`, the one list of problem types, and
checked in; `--check` exits 1 when the files differ from what would be written (the test suite
runs it, so the pages cannot drift from the code).
"""

from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from gateway.problems import PROBLEM_TYPES, ProblemType

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "gateway" / "problem_docs"
STYLE = """\
:root { color-scheme: light dark;
        --fg: #1d232a; --bg: #ffffff; --muted: #5b6670; --accent: #0b6bcb; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e6e9ec; --bg: #14181c; --muted: #9aa5ae; --accent: #6cb4ff; }
}
body { font: 16px/1.5 system-ui, sans-serif; color: var(--fg); background: var(--bg);
       max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
code { font-family: ui-monospace, monospace; }
.status { color: var(--muted); }
a { color: var(--accent); }
"""


def page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)} · Server Scout</title>\n"
        '<link rel="stylesheet" href="/problems/problem.css">\n'
        f"</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n"
    )


def problem_page(slug: str, problem: ProblemType) -> str:
    return page(
        problem.title,
        f"<h1>{html.escape(problem.title)}</h1>\n"
        f'<p class="status">HTTP {problem.status} · problem type '
        f"<code>/problems/{slug}</code></p>\n"
        f"<h2>What it means</h2>\n<p>{html.escape(problem.meaning)}</p>\n"
        f"<h2>What to do</h2>\n<p>{html.escape(problem.remedy)}</p>\n"
        '<p><a href="/problems/">Every problem type</a></p>\n',
    )


def index_page() -> str:
    items = "".join(
        f'<li><a href="/problems/{slug}"><code>{slug}</code></a> '
        f"(HTTP {problem.status}): {html.escape(problem.title)}</li>\n"
        for slug, problem in sorted(PROBLEM_TYPES.items())
    )
    return page(
        "Problem types",
        "<h1>Problem types</h1>\n"
        "<p>Every error the Server Scout API answers is an RFC 9457 "
        "<code>application/problem+json</code> document whose <code>type</code> names one of "
        "these pages.</p>\n"
        f"<ul>\n{items}</ul>\n",
    )


def expected_files() -> dict[str, str]:
    files = {f"{slug}.html": problem_page(slug, p) for slug, p in PROBLEM_TYPES.items()}
    files["index.html"] = index_page()
    files["problem.css"] = STYLE
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the pages are stale")
    args = parser.parse_args(argv)
    expected = expected_files()
    present = {p.name: p.read_text() for p in OUT.glob("*")} if OUT.is_dir() else {}
    if args.check:
        stale = sorted(
            set(expected) ^ set(present) | {n for n in expected if present.get(n) != expected[n]}
        )
        if stale:
            print(f"stale problem pages: {', '.join(stale)}; run {sys.argv[0]}", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for name in set(present) - set(expected):
        (OUT / name).unlink()
    for name, text in expected.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(expected)} files to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
