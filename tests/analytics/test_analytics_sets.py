"""IndicatorSet (keys, snapshot, validation) and MarketAnalyzer (definitions)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from jupyter_rtstream.analytics import (
    ANALYSIS_KEYS,
    EMA,
    INDICATOR_KEYS,
    MACD,
    RSI,
    VWAP,
    BollingerBands,
    IndicatorSet,
    MarketAnalyzer,
    RollingVolatility,
)

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
EXPECTED_KEYS = {
    "sma_20",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "vwap",
    "volatility_20",
}


def wave(n: int) -> list[float]:
    return [100.0 + 3.0 * math.sin(i / 5.0) + 0.01 * i for i in range(n)]


def feed(analyzer: MarketAnalyzer, prices: list[float]) -> dict[str, float | str | None]:
    for i, price in enumerate(prices):
        analyzer.update(price, 10.0, T0 + timedelta(seconds=i))
    return analyzer.results()


# --- IndicatorSet -------------------------------------------------------------------


def test_indicator_set_keys_and_warmup() -> None:
    assert set(INDICATOR_KEYS) == EXPECTED_KEYS and len(INDICATOR_KEYS) == 12
    indicators = IndicatorSet()
    assert indicators.snapshot() == dict.fromkeys(INDICATOR_KEYS)
    first = indicators.update(100.0, 0.0)
    assert set(first) == EXPECTED_KEYS
    assert all(v is None for v in first.values())  # zero volume: no VWAP yet either
    results = [indicators.update(p, 5.0) for p in wave(40)]
    assert all(set(r) == EXPECTED_KEYS for r in results)
    assert all(v is not None for v in results[-1].values())
    # MACD (12/26/9) is the last to warm up: 34 prices.
    assert results[32]["macd"] is not None and results[31]["macd"] is None


def test_indicator_set_matches_the_individual_indicators() -> None:
    prices = wave(80)
    indicators = IndicatorSet()
    ema12, ema26, rsi, macd = EMA(12), EMA(26), RSI(14), MACD(12, 26, 9)
    bands, vwap, vol = BollingerBands(20, 2.0), VWAP(), RollingVolatility(20)
    for i, price in enumerate(prices):
        got = indicators.update(price, float(i % 7))
        m, b = macd.update(price), bands.update(price)
        expected = {
            "sma_20": None if b is None else b.middle,
            "ema_12": ema12.update(price),
            "ema_26": ema26.update(price),
            "rsi_14": rsi.update(price),
            "macd": None if m is None else m.macd,
            "macd_signal": None if m is None else m.signal,
            "macd_hist": None if m is None else m.hist,
            "bb_upper": None if b is None else b.upper,
            "bb_middle": None if b is None else b.middle,
            "bb_lower": None if b is None else b.lower,
            "vwap": vwap.update(price, float(i % 7)),
            "volatility_20": vol.update(price),
        }
        assert got == expected
    assert got["sma_20"] == pytest.approx(sum(prices[-20:]) / 20, rel=1e-12)


def test_snapshot_is_the_latest_update_and_a_copy() -> None:
    indicators = IndicatorSet()
    for price in wave(50):
        last = indicators.update(price, 1.0)
    snap = indicators.snapshot()
    assert snap == last
    last["sma_20"] = -1.0
    snap["ema_12"] = -1.0
    fresh = indicators.snapshot()
    assert fresh["sma_20"] != -1.0 and fresh["ema_12"] != -1.0


@pytest.mark.parametrize(
    ("price", "volume"),
    [(math.nan, 1.0), (math.inf, 1.0), (0.0, 1.0), (-1.0, 1.0), (1.0, -1.0), (1.0, math.nan)],
)
def test_bad_ticks_are_rejected_without_touching_state(price: float, volume: float) -> None:
    indicators = IndicatorSet()
    indicators.update(100.0, 1.0)
    before = indicators.snapshot()
    with pytest.raises(ValueError):
        indicators.update(price, volume)
    with pytest.raises(ValueError):
        MarketAnalyzer().update(price, volume, T0)
    assert indicators.snapshot() == before


def test_indicator_constructors_validate_periods() -> None:
    with pytest.raises(ValueError):
        EMA(0)
    with pytest.raises(ValueError):
        RSI(1)
    with pytest.raises(ValueError):
        MACD(26, 12, 9)
    with pytest.raises(TypeError):
        BollingerBands(20.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        BollingerBands(20, math.nan)
    with pytest.raises(ValueError):
        VWAP().update(100.0, -1.0)


# --- MarketAnalyzer -----------------------------------------------------------------


def test_analyzer_keys_and_empty_results() -> None:
    assert MarketAnalyzer().results() == dict.fromkeys(ANALYSIS_KEYS) | {"tick_count": 0}
    assert set(feed(MarketAnalyzer(), [100.0])) == set(ANALYSIS_KEYS)


@pytest.mark.parametrize(("step", "trend"), [(0.1, "bullish"), (-0.1, "bearish"), (0.0, "neutral")])
def test_trend(step: float, trend: str) -> None:
    prices = [100.0 + step * i for i in range(60)]
    assert feed(MarketAnalyzer(), prices)["trend"] == trend


def test_trend_dead_band_and_warmup() -> None:
    analyzer = MarketAnalyzer()
    results = feed(analyzer, [100.0 + 0.001 * i for i in range(25)])
    assert results["trend"] is None  # slow EMA needs 26 prices
    # A drift far too small to open a 5 bp EMA spread stays neutral.
    assert feed(analyzer, [100.025 + 0.001 * i for i in range(40)])["trend"] == "neutral"


def test_session_stats_are_exact() -> None:
    prices = [50.0, 52.5, 49.0, 55.25, 51.0]
    results = feed(MarketAnalyzer(), prices)
    assert results["session_high"] == 55.25
    assert results["session_low"] == 49.0
    assert results["change_percent"] == (51.0 - 50.0) / 50.0 * 100.0 == 2.0
    assert results["tick_count"] == 5
    assert results["momentum"] is None
    assert results["volatility_regime"] is None


def test_momentum_is_rate_of_change_over_n_ticks() -> None:
    analyzer = MarketAnalyzer(momentum_period=3)
    assert feed(analyzer, [100.0, 101.0, 102.0])["momentum"] is None
    assert feed(analyzer, [110.0])["momentum"] == pytest.approx(10.0)
    assert feed(analyzer, [99.0])["momentum"] == pytest.approx((99.0 - 101.0) / 101.0 * 100)


def alternating(n: int, size: float, start: float = 100.0) -> list[float]:
    """Prices whose log returns alternate ±size: a constant volatility of ``size``."""
    prices = [start]
    for i in range(n - 1):
        prices.append(prices[-1] * math.exp(size if i % 2 == 0 else -size))
    return prices


def test_volatility_regime() -> None:
    calm_then_wild = alternating(100, 0.001) + alternating(30, 0.01)
    assert feed(MarketAnalyzer(), calm_then_wild)["volatility_regime"] == "high"
    wild_then_calm = alternating(100, 0.01) + alternating(30, 0.001)
    assert feed(MarketAnalyzer(), wild_then_calm)["volatility_regime"] == "low"
    steady = alternating(150, 0.004)
    assert feed(MarketAnalyzer(), steady)["volatility_regime"] == "normal"
    assert feed(MarketAnalyzer(), [100.0] * 120)["volatility_regime"] == "low"
    not_warm = MarketAnalyzer()
    assert feed(not_warm, alternating(100, 0.01))["volatility_regime"] is None  # 99 returns
    assert feed(not_warm, [100.0])["volatility_regime"] is not None


def test_analyzer_parameters_are_validated() -> None:
    with pytest.raises(ValueError):
        MarketAnalyzer(fast_period=26, slow_period=12)
    with pytest.raises(ValueError):
        MarketAnalyzer(short_vol_period=100, long_vol_period=20)
    with pytest.raises(ValueError):
        MarketAnalyzer(low_ratio=2.0, high_ratio=1.0)
    analyzer = MarketAnalyzer()
    analyzer.update(100.0, 0.0, T0)
    assert analyzer.last_timestamp == T0
    assert analyzer.tick_count == 1
