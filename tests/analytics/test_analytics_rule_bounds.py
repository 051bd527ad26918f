"""Rules start from the instrument's current state; percent history is bounded by count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from jupyter_rtstream.analytics import AlertRule, AnalyticsEngine, RuleEvaluator, validate_rule
from jupyter_rtstream.analytics.alerts import MAX_HISTORY_POINTS

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def rule(condition: str = "price_above", target: float = 100.0, **kw: object) -> AlertRule:
    return AlertRule(1, "r", "XYZ", condition, target, "high", **kw)  # type: ignore[arg-type]


def test_rule_created_below_its_line_fires_on_the_first_crossing() -> None:
    engine = AnalyticsEngine()
    engine.on_tick("XYZ", 50.0, 1.0, T0)
    engine.add_rule(rule())
    fired = engine.on_tick("XYZ", 101.0, 1.0, T0 + timedelta(seconds=1)).alerts
    assert [a.current_value for a in fired] == [101.0]


def test_rule_created_above_its_line_waits_for_a_fresh_crossing() -> None:
    engine = AnalyticsEngine()
    engine.on_tick("XYZ", 150.0, 1.0, T0)
    engine.add_rule(rule())
    assert engine.on_tick("XYZ", 151.0, 1.0, T0 + timedelta(seconds=1)).alerts == []


def test_warm_up_ticks_keep_rule_state_without_firing() -> None:
    engine = AnalyticsEngine()
    engine.add_rule(rule())  # a stored rule, loaded before the symbol ticks
    assert engine.on_tick("XYZ", 50.0, 1.0, T0, evaluate_rules=False).alerts == []
    assert engine.on_tick("XYZ", 101.0, 1.0, T0 + timedelta(seconds=1)).alerts != []


def test_percent_history_is_bounded_by_count() -> None:
    evaluator = RuleEvaluator(rule("percent_change_above", 1.0, window_seconds=86_400.0))
    for i in range(20_000):  # ~0.3 s apart over 1.7 h: far denser than window / 1024
        evaluator.evaluate(100.0, {}, T0 + timedelta(seconds=i * 0.3))
    assert len(evaluator._history) <= MAX_HISTORY_POINTS + 3


def test_percent_move_still_measured_against_the_as_of_price() -> None:
    evaluator = RuleEvaluator(rule("percent_change_above", 5.0, window_seconds=60.0))
    for i in range(0, 600):  # 10 ticks/s at 100 for a minute
        assert evaluator.evaluate(100.0, {}, T0 + timedelta(seconds=i / 10)) is None
    assert evaluator.evaluate(100.0, {}, T0 + timedelta(seconds=60.5)) is None  # known: 0 %
    fired = evaluator.evaluate(106.0, {}, T0 + timedelta(seconds=61))
    assert fired is not None and fired.current_value == pytest.approx(6.0)


def test_window_over_a_day_is_refused() -> None:
    with pytest.raises(ValueError, match="window_seconds"):
        validate_rule(rule("percent_change_above", 1.0, window_seconds=86_401.0))
