"""What every scenario returns: its figures, its goals, and how they render in the table.

A goal is either *invariant* (0 lost, 0 duplicated, a typed error, a close code, memory
released: it must hold at any speed, so the fast subset in ``tests/chaos`` asserts it) or
*timed* (p95 under a bound, detection within two heartbeat intervals: it depends on the
machine's load, so only the full suite judges it). The suite exits non-zero when any goal of
a scenario it ran is missed.
"""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Goal:
    """One goal of a scenario and whether the run met it."""

    name: str
    passed: bool
    #: What was measured against the goal, for the report (e.g. ``"p95 0.81 s"``).
    measured: str = ""
    #: True for a goal on time or speed: judged by the full suite, never by the tests.
    timed: bool = False


@dataclass
class Result:
    """One scenario's run: its load, the faults it injected, figures and goals."""

    scenario: str
    load: str
    faults: str
    #: The headline figure, one line (the table's "figure" column).
    figure: str = ""
    goals: list[Goal] = field(default_factory=list)
    #: Every number measured, JSON-ready (the suite's ``--json`` output).
    details: dict[str, Any] = field(default_factory=dict)
    #: Why a part of the scenario could not run here (stated in the report, not hidden).
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def goal(self, name: str, passed: bool, measured: str = "", *, timed: bool = False) -> bool:
        self.goals.append(Goal(name, bool(passed), measured, timed))
        return bool(passed)

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.goals)

    def failed(self, *, timed: bool | None = None) -> list[Goal]:
        """Missed goals (``timed=False``: only the invariants; None: all)."""
        return [g for g in self.goals if not g.passed and (timed is None or g.timed == timed)]

    def goal_text(self) -> str:
        return "; ".join(g.name for g in self.goals)

    def result_text(self) -> str:
        missed = self.failed()
        if not missed:
            return "**met**"
        return "**missed**: " + "; ".join(f"{g.name} ({g.measured})" for g in missed)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    var = sum((x - mx) ** 2 for x, _ in points)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / var


def commit() -> str:
    """The checkout's short commit (with ``+dirty`` when it has local changes)."""
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def machine_load() -> str:
    """``load 1.23 on 2 cores`` (what the figures were measured next to)."""
    try:
        one, five, _ = os.getloadavg()
    except OSError:
        return "load unknown"
    return f"load {one:.2f}/{five:.2f} (1/5 min) on {os.cpu_count()} cores"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


TABLE_HEADER = (
    "| scenario | load | faults injected | figure | goal | result | date | commit |\n"
    "|---|---|---|---|---|---|---|---|"
)


def table(results: list[Result], when: datetime | None = None, at: str | None = None) -> str:
    """The reliability table (``docs/reliability.md``'s format), one row per result."""
    date = (when or datetime.now(timezone.utc)).strftime("%Y-%m-%d")
    rev = at or commit()
    rows = [
        "| "
        + " | ".join(
            _cell(c)
            for c in (
                r.scenario,
                r.load,
                r.faults,
                r.figure,
                r.goal_text(),
                r.result_text(),
                date,
                rev,
            )
        )
        + " |"
        for r in results
    ]
    return "\n".join([TABLE_HEADER, *rows])
