"""The suite's report and exit status: pure parts, no server."""

from __future__ import annotations

import asyncio
import types
from datetime import datetime, timezone
from typing import Any

import pytest

from jupyter_rtstream.chaos import __main__ as cli
from jupyter_rtstream.chaos.result import Result, percentile, slope, table


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.95) == 95.0
    assert percentile([3.0], 0.95) == 3.0
    assert percentile([], 0.5) != percentile([], 0.5)  # NaN


def test_slope_of_a_line_and_of_a_flat_series() -> None:
    assert slope([(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]) == pytest.approx(2.0)
    assert slope([(0.0, 7.0), (5.0, 7.0)]) == 0.0
    assert slope([(1.0, 2.0)]) == 0.0


def test_invariant_and_timed_goals_are_told_apart() -> None:
    result = Result("s", "load", "faults")
    result.goal("0 lost", True)
    result.goal("p95 <= 1.5 s", False, "p95 2.1 s", timed=True)
    assert not result.passed
    assert result.failed(timed=False) == []
    assert [g.name for g in result.failed(timed=True)] == ["p95 <= 1.5 s"]
    assert "missed" in result.result_text() and "p95 2.1 s" in result.result_text()


def test_table_has_one_row_per_result_and_escapes_pipes() -> None:
    ok = Result("1. a", "l|x", "f", figure="fig")
    ok.goal("g", True)
    text = table([ok], when=datetime(2026, 1, 2, tzinfo=timezone.utc), at="abc123")
    header, _rule, row = text.splitlines()
    assert header.startswith("| scenario | load | faults injected | figure | goal | result |")
    assert row == "| 1. a | l\\|x | f | fig | g | **met** | 2026-01-02 | abc123 |"


def _fake(passed: bool) -> Any:
    async def run(**_: Any) -> Result:
        result = Result("fake", "none", "none", figure="f")
        result.goal("holds", passed)
        return result

    return types.SimpleNamespace(run=run)


@pytest.mark.parametrize(("passed", "status"), [(True, 0), (False, 1)])
def test_exit_status_is_non_zero_when_a_goal_is_missed(
    monkeypatch: pytest.MonkeyPatch, passed: bool, status: int
) -> None:
    monkeypatch.setattr(cli, "_load", lambda name: _fake(passed))
    assert asyncio.run(cli.main(["--only", "wire"])) == status


def test_a_scenario_that_crashes_is_a_missed_goal(monkeypatch: pytest.MonkeyPatch) -> None:
    async def boom(**_: Any) -> Result:
        raise RuntimeError("injected")

    monkeypatch.setattr(cli, "_load", lambda name: types.SimpleNamespace(run=boom))
    assert asyncio.run(cli.main(["--only", "frozen"])) == 1


def test_unknown_scenarios_are_a_usage_error() -> None:
    with pytest.raises(SystemExit) as exc:
        asyncio.run(cli.main(["--only", "nope"]))
    assert exc.value.code == 2
