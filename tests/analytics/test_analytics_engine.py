"""AnalyticsEngine: per-symbol pipeline, rule lifecycle; and the benchmark's entry point."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_rtstream.analytics import (
    ANALYSIS_KEYS,
    INDICATOR_KEYS,
    AlertRule,
    AnalyticsEngine,
    IndicatorSet,
    TickResult,
)
from jupyter_rtstream.analytics.bench import main as bench_main

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)


def price_rule(rule_id: int, symbol: str, target: float = 100.0) -> AlertRule:
    return AlertRule(
        rule_id=rule_id,
        rule_name=f"{symbol} above {target}",
        symbol=symbol,
        condition="price_above",
        target_value=target,
        severity="medium",
    )


class Clock:
    def __init__(self) -> None:
        self.i = 0

    def __call__(self) -> datetime:
        self.i += 1
        return T0 + timedelta(seconds=self.i)


def test_on_tick_returns_indicators_and_tracks_symbols() -> None:
    engine = AnalyticsEngine()
    now = Clock()
    reference = IndicatorSet()
    for i in range(40):
        price = 100.0 + math.sin(i)
        result = engine.on_tick("AAPL", price, 10.0, now())
        assert isinstance(result, TickResult)
        assert result.indicators == reference.update(price, 10.0)
        assert result.alerts == []
    engine.on_tick("MSFT", 300.0, 1.0, now())
    assert engine.symbols() == ["AAPL", "MSFT"]
    assert list(engine.indicators("AAPL")) == list(INDICATOR_KEYS)
    assert engine.indicators("AAPL") == reference.snapshot()
    assert all(v is not None for v in engine.indicators("AAPL").values())
    analysis = engine.analysis("AAPL")
    assert set(analysis) == set(ANALYSIS_KEYS)
    assert analysis["tick_count"] == 40
    assert engine.analysis("MSFT")["session_high"] == 300.0
    with pytest.raises(KeyError):
        engine.indicators("GOOG")
    with pytest.raises(KeyError):
        engine.analysis("GOOG")


def test_rule_for_unseen_symbol_arms_on_first_tick() -> None:
    engine = AnalyticsEngine()
    now = Clock()
    engine.add_rule(price_rule(1, "MSFT"))
    assert engine.on_tick("AAPL", 150.0, 1.0, now()).alerts == []  # other symbol
    assert engine.symbols() == ["AAPL"]
    # MSFT's first tick is above the line: it arms the rule without firing.
    assert engine.on_tick("MSFT", 101.0, 1.0, now()).alerts == []
    assert engine.on_tick("MSFT", 99.0, 1.0, now()).alerts == []
    fired = engine.on_tick("MSFT", 100.5, 1.0, now()).alerts
    assert [a.rule_id for a in fired] == [1]
    assert fired[0].symbol == "MSFT"
    assert fired[0].message == "MSFT price 100.50 crossed above 100.00"


def test_rule_added_for_seen_symbol_and_several_rules() -> None:
    engine = AnalyticsEngine()
    now = Clock()
    engine.on_tick("AAPL", 95.0, 1.0, now())
    engine.add_rule(price_rule(2, "AAPL", 100.0))
    engine.add_rule(price_rule(1, "AAPL", 98.0))
    engine.on_tick("AAPL", 96.0, 1.0, now())  # first evaluation: arms both
    fired = engine.on_tick("AAPL", 101.0, 1.0, now()).alerts
    assert sorted(a.rule_id for a in fired) == [1, 2]
    assert [r.rule_id for r in engine.rules()] == [1, 2]


def test_remove_rule_stops_it() -> None:
    engine = AnalyticsEngine()
    now = Clock()
    engine.add_rule(price_rule(7, "AAPL"))
    engine.on_tick("AAPL", 99.0, 1.0, now())
    assert len(engine.on_tick("AAPL", 101.0, 1.0, now()).alerts) == 1
    engine.on_tick("AAPL", 99.0, 1.0, now())
    assert engine.remove_rule(7) is True
    assert engine.remove_rule(7) is False
    assert engine.rules() == []
    assert engine.on_tick("AAPL", 101.0, 1.0, now()).alerts == []
    # Removing a rule whose symbol never ticked works too.
    engine.add_rule(price_rule(8, "TSLA"))
    assert engine.remove_rule(8) is True
    assert engine.on_tick("TSLA", 99.0, 1.0, now()).alerts == []
    assert engine.on_tick("TSLA", 101.0, 1.0, now()).alerts == []


def test_add_rule_validates_and_rejects_duplicate_ids() -> None:
    engine = AnalyticsEngine()
    engine.add_rule(price_rule(1, "AAPL"))
    with pytest.raises(ValueError, match="already exists"):
        engine.add_rule(price_rule(1, "MSFT"))
    bad = AlertRule(2, "bad", "AAPL", "indicator_above", 70.0, "high", indicator="rsi")
    with pytest.raises(ValueError, match="unknown indicator"):
        engine.add_rule(bad)
    assert [r.rule_id for r in engine.rules()] == [1]


def test_invalid_tick_changes_nothing() -> None:
    engine = AnalyticsEngine()
    with pytest.raises(ValueError):
        engine.on_tick("AAPL", math.nan, 1.0, T0)
    assert engine.symbols() == []
    engine.on_tick("AAPL", 100.0, 1.0, T0)
    before = engine.indicators("AAPL"), engine.analysis("AAPL")
    with pytest.raises(ValueError):
        engine.on_tick("AAPL", 100.0, -5.0, T0)
    assert (engine.indicators("AAPL"), engine.analysis("AAPL")) == before


def test_warm_up_without_rules() -> None:
    engine = AnalyticsEngine()
    now = Clock()
    engine.add_rule(price_rule(1, "AAPL"))
    for price in (99.0, 101.0, 99.0, 101.0):
        assert engine.on_tick("AAPL", price, 1.0, now(), evaluate_rules=False).alerts == []
    assert engine.analysis("AAPL")["tick_count"] == 4
    # Rule state was not touched by the warm-up: the next live tick only arms it.
    assert engine.on_tick("AAPL", 101.0, 1.0, now()).alerts == []
    engine.on_tick("AAPL", 99.0, 1.0, now())
    assert len(engine.on_tick("AAPL", 101.0, 1.0, now()).alerts) == 1


def test_bench_runs(capsys: pytest.CaptureFixture[str]) -> None:
    bench_main(["--ticks", "300", "--repeat", "1"])
    out = capsys.readouterr().out
    assert "whole pipeline" in out and "µs/tick" in out and "ticks/s" in out
