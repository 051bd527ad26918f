"""Alert rules: validation and edge-triggered evaluation."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jupyter_rtstream.analytics import (
    INDICATOR_KEYS,
    AlertRule,
    FiredAlert,
    RuleEvaluator,
    validate_rule,
)

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
NO_INDICATORS: dict[str, float | None] = dict.fromkeys(INDICATOR_KEYS)


def rule(condition: str = "price_above", target: float = 190.0, **kw: Any) -> AlertRule:
    return AlertRule(
        rule_id=kw.pop("rule_id", 1),
        rule_name=kw.pop("rule_name", "test"),
        symbol=kw.pop("symbol", "AAPL"),
        condition=condition,
        target_value=target,
        severity=kw.pop("severity", "high"),
        **kw,
    )


def run_prices(
    evaluator: RuleEvaluator, prices: Sequence[float], step: float = 1.0
) -> list[FiredAlert | None]:
    return [
        evaluator.evaluate(p, NO_INDICATORS, T0 + timedelta(seconds=i * step))
        for i, p in enumerate(prices)
    ]


def run_indicators(
    evaluator: RuleEvaluator, rows: Sequence[dict[str, float | None]], price: float = 100.0
) -> list[FiredAlert | None]:
    return [
        evaluator.evaluate(price, NO_INDICATORS | row, T0 + timedelta(seconds=i))
        for i, row in enumerate(rows)
    ]


def fired_at(results: Sequence[FiredAlert | None]) -> list[int]:
    return [i for i, r in enumerate(results) if r is not None]


# --- price ---------------------------------------------------------------------------


def test_price_above_fires_once_per_crossing() -> None:
    results = run_prices(RuleEvaluator(rule()), [189, 191.2, 192, 195, 189, 190, 191, 191.5])
    # 190 is not above 190: the second crossing happens at 191.
    assert fired_at(results) == [1, 6]
    alert = results[1]
    assert alert is not None
    assert alert.message == "AAPL price 191.20 crossed above 190.00"
    assert alert.current_value == 191.2
    assert (alert.rule_id, alert.symbol, alert.rule_name) == (1, "AAPL", "test")
    assert (alert.condition, alert.target_value, alert.severity) == ("price_above", 190.0, "high")
    assert alert.timestamp == T0 + timedelta(seconds=1)


def test_price_below() -> None:
    results = run_prices(RuleEvaluator(rule("price_below")), [191, 189, 188, 191, 189.5])
    assert fired_at(results) == [1, 4]
    assert results[1] is not None
    assert results[1].message == "AAPL price 189.00 crossed below 190.00"


def test_first_observation_only_arms() -> None:
    # Already above on the first tick: no alert until it dips and crosses again.
    results = run_prices(RuleEvaluator(rule()), [195, 196, 189, 191])
    assert fired_at(results) == [3]


def test_cooldown_suppresses_refire_within_window() -> None:
    evaluator = RuleEvaluator(rule(cooldown_seconds=10.0))
    # t: 0    1    2    3    4    12   13   14
    prices = [189, 191, 189, 191, 189, 189, 191, 192]
    stamps = [0, 1, 2, 3, 4, 12, 13, 14]
    results = [
        evaluator.evaluate(p, NO_INDICATORS, T0 + timedelta(seconds=t))
        for p, t in zip(prices, stamps, strict=True)
    ]
    # Crossing at t=3 is within 10 s of the fire at t=1; the one at t=13 is not.
    assert fired_at(results) == [1, 6]


def test_cooldown_swallowed_crossing_needs_a_new_one() -> None:
    evaluator = RuleEvaluator(rule(cooldown_seconds=5.0))
    stamps = [0, 1, 2, 3, 20]
    prices = [189, 191, 189, 191, 192]  # stays above after the swallowed crossing at t=3
    results = [
        evaluator.evaluate(p, NO_INDICATORS, T0 + timedelta(seconds=t))
        for p, t in zip(prices, stamps, strict=True)
    ]
    assert fired_at(results) == [1]


# --- percent change -------------------------------------------------------------------


def test_percent_change_uses_timestamps() -> None:
    evaluator = RuleEvaluator(rule("percent_change_above", 2.0, window_seconds=60.0))
    at = [0.0, 30.0, 59.0, 61.0, 90.0, 125.0, 200.0]
    prices = [100.0, 101.0, 101.5, 103.0, 103.0, 102.0, 106.0]
    results = [
        evaluator.evaluate(p, NO_INDICATORS, T0 + timedelta(seconds=t))
        for p, t in zip(prices, at, strict=True)
    ]
    # t<60: no price 60 s old yet -> unknown. t=61: vs the t=0 price 100 -> +3 %, but that
    # is the first known value, so it only arms (true). t=90: vs t=30 (101) -> +1.98 %,
    # false. t=125: vs t=61 (103) -> -0.97 %, false. t=200: vs t=125 (102) -> +3.9 %: fires.
    assert fired_at(results) == [6]
    alert = results[6]
    assert alert is not None
    assert alert.current_value == pytest.approx((106.0 - 102.0) / 102.0 * 100.0)
    assert alert.message == "AAPL price moved +3.92% in 60s, above +2.00%"
    assert evaluator.state is True


def test_percent_change_below_and_default_window() -> None:
    evaluator = RuleEvaluator(rule("percent_change_below", -1.0))
    at = [0, 10, 60, 70, 120, 130]
    prices = [100.0, 100.0, 100.5, 99.5, 99.0, 98.0]
    results = [
        evaluator.evaluate(p, NO_INDICATORS, T0 + timedelta(seconds=t))
        for p, t in zip(prices, at, strict=True)
    ]
    # t=60: +0.5 % (arms false); t=70: -0.5 %; t=120: vs 100.5 -> -1.49 %: fires;
    # t=130: vs 99.5 -> -1.5 %, still true: no re-fire.
    assert fired_at(results) == [4]


# --- indicators -------------------------------------------------------------------------


def test_indicator_above_and_below() -> None:
    above = RuleEvaluator(rule("indicator_above", 70.0, indicator="rsi_14"))
    rows: list[dict[str, float | None]] = [
        {"rsi_14": 65.0},
        {"rsi_14": 71.0},
        {"rsi_14": 72.0},
        {"rsi_14": 69.0},
        {"rsi_14": 75.5},
    ]
    results = run_indicators(above, rows)
    assert fired_at(results) == [1, 4]
    assert results[1] is not None
    assert results[1].message == "AAPL rsi_14 71.00 crossed above 70.00"
    assert results[1].current_value == 71.0
    below = RuleEvaluator(rule("indicator_below", 30.0, indicator="rsi_14"))
    rows = [{"rsi_14": v} for v in (35.0, 29.0, 25.0, 31.0, 28.0)]
    assert fired_at(run_indicators(below, rows)) == [1, 4]


def test_none_indicator_values_never_fire() -> None:
    evaluator = RuleEvaluator(rule("indicator_above", 70.0, indicator="rsi_14"))
    rows: list[dict[str, float | None]] = [{"rsi_14": None}, {"rsi_14": None}, {"rsi_14": 75.0}]
    # The first known value (75) only arms.
    assert fired_at(run_indicators(evaluator, rows)) == []
    # Unknown values leave the recorded state alone: false, unknown, true is a crossing.
    evaluator = RuleEvaluator(rule("indicator_above", 70.0, indicator="rsi_14"))
    rows = [{"rsi_14": 60.0}, {"rsi_14": None}, {"rsi_14": None}, {"rsi_14": 75.0}]
    assert fired_at(run_indicators(evaluator, rows)) == [3]
    cross = RuleEvaluator(
        rule("crosses_above", 0.0, indicator="macd", other_indicator="macd_signal")
    )
    rows = [
        {"macd": -1.0, "macd_signal": None},
        {"macd": 1.0, "macd_signal": None},
        {"macd": None, "macd_signal": 0.0},
    ]
    assert fired_at(run_indicators(cross, rows)) == []
    assert cross.state is None


def test_crosses_above_other_indicator() -> None:
    evaluator = RuleEvaluator(
        rule("crosses_above", 0.0, indicator="macd", other_indicator="macd_signal")
    )
    rows: list[dict[str, float | None]] = [
        {"macd": -0.5, "macd_signal": -0.2},
        {"macd": -0.1, "macd_signal": -0.15},  # crosses above
        {"macd": 0.3, "macd_signal": 0.1},
        {"macd": 0.05, "macd_signal": 0.1},  # back below
        {"macd": 0.05, "macd_signal": 0.05},  # equal: not above
        {"macd": 0.07, "macd_signal": 0.06},  # crosses above
    ]
    results = run_indicators(evaluator, rows)
    assert fired_at(results) == [1, 5]
    alert = results[1]
    assert alert is not None
    assert alert.current_value == -0.1
    assert alert.message == "AAPL macd -0.1 crossed above macd_signal -0.15"


def test_crosses_below_and_price_as_indicator() -> None:
    evaluator = RuleEvaluator(
        rule("crosses_below", 0.0, indicator="price", other_indicator="bb_lower")
    )
    bands = {"bb_lower": 99.0}
    results = [
        evaluator.evaluate(p, NO_INDICATORS | bands, T0 + timedelta(seconds=i))
        for i, p in enumerate([100.0, 98.5, 98.0, 99.5, 98.9])
    ]
    assert fired_at(results) == [1, 4]
    assert results[1] is not None
    assert results[1].message == "AAPL price 98.50 crossed below bb_lower 99.00"


def test_crosses_target_when_no_other_indicator() -> None:
    evaluator = RuleEvaluator(rule("crosses_above", 0.0, indicator="macd_hist"))
    rows: list[dict[str, float | None]] = [{"macd_hist": v} for v in (-0.2, 0.1, -0.1, 0.0, 0.2)]
    assert fired_at(run_indicators(evaluator, rows)) == [1, 4]


def test_out_of_order_timestamps_do_not_break_cooldown() -> None:
    evaluator = RuleEvaluator(rule(cooldown_seconds=10.0))
    stamps = [100, 101, 50, 60, 105]
    prices = [189, 191, 189, 191, 191]
    results = [
        evaluator.evaluate(p, NO_INDICATORS, T0 + timedelta(seconds=t))
        for p, t in zip(prices, stamps, strict=True)
    ]
    # Late ticks count as "now" (t=101): the crossing at index 3 is within the cooldown.
    assert fired_at(results) == [1]


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "good",
    [
        rule(),
        rule("price_below", 1, cooldown_seconds=0),
        rule("percent_change_above", 1.5, window_seconds=300.0, severity="low"),
        rule("percent_change_below", -2.0, severity="medium"),
        rule("indicator_above", 70, indicator="rsi_14"),
        rule("indicator_below", 0.0, indicator="volatility_20"),
        rule("crosses_above", 0.0, indicator="macd", other_indicator="macd_signal"),
        rule("crosses_below", 100.0, indicator="price", cooldown_seconds=30.0),
    ],
)
def test_validate_accepts(good: AlertRule) -> None:
    assert validate_rule(good) is good
    RuleEvaluator(good)


BAD: list[tuple[AlertRule, str]] = [
    (rule("price_crosses"), "unknown condition"),
    (rule("indicator_above", indicator="rsi"), "unknown indicator"),
    (rule("indicator_above"), "requires an indicator"),
    (rule("crosses_above"), "requires an indicator"),
    (rule("crosses_above", indicator="macd", other_indicator="signal"), "unknown other_indicator"),
    (rule("crosses_above", indicator="macd", other_indicator="macd"), "must differ"),
    (rule("price_above", indicator="rsi_14"), "does not take an indicator"),
    (rule("indicator_above", indicator="rsi_14", other_indicator="macd"), "other_indicator"),
    (rule(target=math.nan), "finite"),
    (rule(target=math.inf), "finite"),
    (rule(target=True), "finite number"),
    (rule(target="190"), "finite number"),  # type: ignore[arg-type]
    (rule(severity="critical"), "severity"),
    (rule(cooldown_seconds=-1.0), "cooldown_seconds"),
    (rule(cooldown_seconds=math.nan), "cooldown_seconds"),
    (rule("percent_change_above", window_seconds=-5.0), "window_seconds"),
    (rule("percent_change_above", window_seconds=0.0), "window_seconds"),
    (rule("price_above", window_seconds=60.0), "does not take window_seconds"),
    (rule(rule_name=" "), "rule_name"),
    (rule(symbol=""), "symbol"),
    (rule(rule_id="1"), "rule_id"),
]


@pytest.mark.parametrize(("bad", "message"), BAD)
def test_validate_rejects(bad: AlertRule, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        validate_rule(bad)
    with pytest.raises(ValueError, match=message):
        RuleEvaluator(bad)


def test_rules_and_alerts_are_frozen() -> None:
    r = rule()
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.target_value = 1.0  # type: ignore[misc]
    alert = run_prices(RuleEvaluator(r), [189, 191])[1]
    assert alert is not None
    with pytest.raises(dataclasses.FrozenInstanceError):
        alert.message = ""  # type: ignore[misc]
