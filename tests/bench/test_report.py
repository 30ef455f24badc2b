"""The bench's JSON report: every kind of row key it writes maps to its scenario."""

import json
from pathlib import Path

from bench.report import Goal, Report, Row


def test_the_json_report_names_each_rows_scenario(tmp_path: Path) -> None:
    report = Report(meta={"client": "wrk"})
    for key in ("1", "3a", "5s", "9c", "10"):
        report.add(Row(key=key, label=key, p99_ms=4.0, goal=Goal("p99_ms", 5.0)))
    path = tmp_path / "out" / "bench.json"
    report.write_json(path)
    results = json.loads(path.read_text())["results"]
    assert [(r["key"], r["scenario"], r["goal_met"]) for r in results] == [
        ("1", 1, True),
        ("3a", 3, True),
        ("5s", 5, True),
        ("9c", 9, True),
        ("10", 10, True),
    ]
