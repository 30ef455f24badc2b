"""Results: one row per figure, printed as a table with the goals beside it, and as JSON."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

_SCENARIO_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Goal:
    metric: Literal["ratio", "p99_ms"]
    target: float

    def text(self) -> str:
        if self.metric == "ratio":
            return f"ratio >= {self.target:g}"
        return f"p99 < {self.target:g} ms"

    def met(self, row: Row) -> bool | None:
        value = row.ratio if self.metric == "ratio" else row.p99_ms
        if value is None or row.skipped:
            return None
        return value >= self.target if self.metric == "ratio" else value < self.target


@dataclass
class Row:
    key: str  # "1", "3a", ...: the scenario number and the figure within it
    label: str
    rps: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    ratio: float | None = None
    samples: int = 0  # requests (or rotations, logins) measured
    errors: int = 0
    goal: Goal | None = None
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    # CPU milliseconds per request in the measured window, by process ("machine": all cores).
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    # Baseline server CPU per request / our servers' CPU per request (PostgreSQL and Redis not
    # counted): less sensitive than req/s to other load on a shared machine.
    cpu_ratio: float | None = None

    @property
    def scenario(self) -> int:
        # The number a key starts with: "4c" and "5s" (a variant of 5) belong to 4 and 5.
        number = _SCENARIO_NUMBER.match(self.key)
        if number is None:
            raise ValueError(f"a row's key starts with its scenario's number, not {self.key!r}")
        return int(number.group())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["scenario"] = self.scenario
        data["goal"] = self.goal.text() if self.goal else None
        data["goal_met"] = self.goal.met(self) if self.goal else None
        return data


@dataclass
class Report:
    meta: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)  # scenarios that raised instead of measuring

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def row(self, key: str) -> Row | None:
        return next((row for row in self.rows if row.key == key), None)

    def write_json(self, path: Path) -> None:
        document = {
            "meta": self.meta,
            "failed_scenarios": self.failed,
            "results": [row.to_json() for row in self.rows],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n")

    def table(self) -> str:
        header = (
            f"{'#':<3} {'scenario':<50} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
            f"{'ratio':>6} {'cpu r.':>6} {'n':>7} {'err':>4}  goal"
        )
        lines = [header, "-" * len(header)]
        for row in self.rows:
            if row.skipped:
                lines.append(f"{row.key:<3} {row.label:<50} {row.skipped}")
                continue
            goal = ""
            if row.goal is not None:
                met = row.goal.met(row)
                goal = f"{row.goal.text()}  {'met' if met else 'NOT MET'}"
            lines.append(
                f"{row.key:<3} {row.label:<50} {_num(row.rps, 0):>8} {_num(row.p50_ms, 2):>8} "
                f"{_num(row.p99_ms, 2):>8} {_num(row.ratio, 2):>6} {_num(row.cpu_ratio, 2):>6} "
                f"{row.samples:>7} "
                f"{row.errors:>4}  {goal}".rstrip()
            )
        notes = [(row.key, note) for row in self.rows for note in row.notes]
        if notes:
            lines += ["", "Notes:"]
            lines += [f"  {key:<3} {note}" for key, note in notes]
        cpu_rows = [row for row in self.rows if row.cpu_ms_per_request]
        if cpu_rows:
            lines += [
                "",
                "CPU ms per request in the measured window (machine = all cores, so it includes "
                "PostgreSQL, Redis and anything else running);",
                "cpu r. = the hello's CPU per request / our servers' CPU per request:",
            ]
            for row in cpu_rows:
                parts = ", ".join(
                    f"{name} {value:.3f}" for name, value in row.cpu_ms_per_request.items()
                )
                lines.append(f"  {row.key:<3} {parts}")
        return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"
