"""Each incremental indicator against TA-Lib (and numpy for VWAP/volatility).

Inputs: seeded random walks of several thousand ticks on a 0.01 tick grid, with flat runs
(repeated identical prices) of 1-45 ticks inserted, so some windows are entirely flat and
many are partly flat. Every value TA-Lib outputs (non-NaN) must match ours to 1e-9 relative,
and our first non-None index must be TA-Lib's first non-NaN index.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest
import talib
from talib import MA_Type  # type: ignore[attr-defined]

from jupyter_rtstream.analytics import (
    EMA,
    MACD,
    RSI,
    SMA,
    VWAP,
    BollingerBands,
    RollingVolatility,
)

REL = 1e-9
CASES = [(seed, level) for seed in (1, 2, 3) for level in (1.0, 100.0, 5000.0)]


def random_walk(seed: int, level: float, n: int = 5000) -> np.ndarray:
    """Prices around ``level`` on a 0.01·level/100 grid, with flat runs of 1-45 ticks."""
    rng = np.random.default_rng(seed)
    tick = level / 10_000
    prices: list[float] = []
    price = level
    while len(prices) < n:
        if rng.random() < 0.02:
            prices.extend([price] * int(rng.integers(1, 46)))
        step = int(rng.integers(-30, 31)) * tick
        price = max(tick * 100, round((price + step) / tick) * tick)
        prices.append(price)
    return np.array(prices[:n], dtype=np.float64)


def volumes(seed: int, n: int) -> np.ndarray:
    """Integer volumes, zero for the first 5 ticks and ~10 % of the rest."""
    rng = np.random.default_rng(seed + 1000)
    vol = rng.integers(1, 1000, n).astype(np.float64)
    vol[rng.random(n) < 0.1] = 0.0
    vol[:5] = 0.0
    return vol


def first_index(values: Sequence[object]) -> int:
    return next(i for i, v in enumerate(values) if v is not None)


def compare(
    ours: Sequence[float | None],
    reference: np.ndarray,
    *,
    abs_tol: float = 0.0,
) -> float:
    """Assert every non-NaN reference value is matched; return the max relative error."""
    assert len(ours) == len(reference)
    ref_first = int(np.argmax(~np.isnan(reference)))
    assert not np.isnan(reference[ref_first])
    assert first_index(ours) == ref_first
    assert all(v is None for v in ours[:ref_first])
    worst = 0.0
    for i in range(ref_first, len(reference)):
        expected = float(reference[i])
        got = ours[i]
        assert not math.isnan(expected), f"reference NaN at {i}"
        assert got is not None, f"None at {i} after warm-up"
        assert math.isclose(got, expected, rel_tol=REL, abs_tol=abs_tol), (i, got, expected)
        if expected != 0.0:
            worst = max(worst, abs(got - expected) / abs(expected))
        else:
            assert got == 0.0 or abs_tol > 0.0, (i, got)
    return worst


def feed(indicator: Callable[[float], object], prices: np.ndarray) -> list[object]:
    return [indicator(float(p)) for p in prices]


def test_random_walk_has_flat_windows() -> None:
    prices = random_walk(1, 100.0)
    runs = np.diff(np.flatnonzero(np.diff(prices) != 0.0))
    assert runs.max() > 30  # some flat run spans a whole 20/26 window
    assert len(prices) == 5000


@pytest.mark.parametrize(("seed", "level"), CASES)
@pytest.mark.parametrize("period", [2, 5, 20, 50])
def test_sma(seed: int, level: float, period: int) -> None:
    prices = random_walk(seed, level)
    sma = SMA(period)
    ours = [sma.update(float(p)) for p in prices]
    compare(ours, talib.SMA(prices, timeperiod=period))
    assert sma.value == ours[-1]


@pytest.mark.parametrize(("seed", "level"), CASES)
@pytest.mark.parametrize("period", [2, 12, 26, 50])
def test_ema(seed: int, level: float, period: int) -> None:
    prices = random_walk(seed, level)
    ema = EMA(period)
    ours = [ema.update(float(p)) for p in prices]
    compare(ours, talib.EMA(prices, timeperiod=period))
    assert ema.value == ours[-1]


@pytest.mark.parametrize(("seed", "level"), CASES)
@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi(seed: int, level: float, period: int) -> None:
    prices = random_walk(seed, level)
    rsi = RSI(period)
    ours = [rsi.update(float(p)) for p in prices]
    compare(ours, talib.RSI(prices, timeperiod=period))
    assert rsi.value == ours[-1]


def test_rsi_of_flat_start_is_zero_like_talib() -> None:
    prices = np.array([50.0] * 30 + [50.5] * 5)
    rsi = RSI(14)
    ours = [rsi.update(float(p)) for p in prices]
    compare(ours, talib.RSI(prices, timeperiod=14))
    assert ours[14] == 0.0


@pytest.mark.parametrize(("seed", "level"), CASES)
@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (3, 10, 4), (5, 6, 1)])
def test_macd(seed: int, level: float, fast: int, slow: int, signal: int) -> None:
    prices = random_walk(seed, level)
    macd = MACD(fast, slow, signal)
    out = [macd.update(float(p)) for p in prices]
    ref_line, ref_signal, ref_hist = talib.MACD(
        prices, fastperiod=fast, slowperiod=slow, signalperiod=signal
    )
    # The MACD line and histogram are differences of price-level EMAs. TA-Lib's C build
    # fuses the EMA multiply-add (FMA), CPython 3.11 cannot, so the EMAs may differ in the
    # last bit (~1e-14 absolute at price 100); near a zero crossing that is a large
    # *relative* error of a tiny number. So, besides rel 1e-9, allow 1e-12 * price level.
    abs_tol = 1e-12 * level
    compare([None if o is None else o.macd for o in out], ref_line, abs_tol=abs_tol)
    compare([None if o is None else o.signal for o in out], ref_signal, abs_tol=abs_tol)
    compare([None if o is None else o.hist for o in out], ref_hist, abs_tol=abs_tol)
    # talib.MACD outputs nothing before the signal is seeded, at index slow + signal - 2.
    assert first_index(out) == slow + signal - 2


def test_macd_line_is_available_from_slow_minus_one() -> None:
    prices = random_walk(5, 100.0, 200)
    macd = MACD(12, 26, 9)
    fast_ema = EMA(12)
    slow_ema = EMA(26)
    for i, price in enumerate(prices):
        macd.update(float(price))
        slow = slow_ema.update(float(price))
        if i >= 14:  # the fast EMA is seeded on the 12 prices ending at index 25
            fast_ema.update(float(price))
        if i < 25:
            assert macd.line is None
        else:
            assert slow is not None and fast_ema.value is not None
            assert macd.line == pytest.approx(fast_ema.value - slow, rel=0, abs=1e-12)


@pytest.mark.parametrize(("seed", "level"), CASES)
@pytest.mark.parametrize(("period", "k"), [(20, 2.0), (5, 1.5), (50, 3.0)])
def test_bollinger(seed: int, level: float, period: int, k: float) -> None:
    prices = random_walk(seed, level)
    bands = BollingerBands(period, k)
    out = [bands.update(float(p)) for p in prices]
    upper, middle, lower = talib.BBANDS(
        prices, timeperiod=period, nbdevup=k, nbdevdn=k, matype=MA_Type.SMA
    )
    # Flat windows give sigma exactly 0 in both implementations (no abs_tol needed); the
    # band values are at price level, so rel 1e-9 holds even for tiny sigma.
    compare([None if o is None else o.upper for o in out], upper)
    compare([None if o is None else o.middle for o in out], middle)
    compare([None if o is None else o.lower for o in out], lower)
    flat = [
        i for i in range(period, len(prices)) if np.all(prices[i - period + 1 : i + 1] == prices[i])
    ]
    if period <= 30:  # flat runs are up to 45 ticks long
        assert flat, "the data must contain fully flat windows"
    for i in flat:
        o = out[i]
        assert o is not None and o.upper == o.middle == o.lower == prices[i]


@pytest.mark.parametrize(("seed", "level"), CASES)
def test_vwap_against_numpy(seed: int, level: float) -> None:
    prices = random_walk(seed, level)
    vol = volumes(seed, len(prices))
    vwap = VWAP()
    ours = [vwap.update(float(p), float(v)) for p, v in zip(prices, vol, strict=True)]
    cum_vol = np.cumsum(vol)
    with np.errstate(invalid="ignore", divide="ignore"):
        reference = np.where(cum_vol > 0, np.cumsum(prices * vol) / cum_vol, np.nan)
    compare(ours, reference)
    assert first_index(ours) == 5


@pytest.mark.parametrize(("seed", "level"), CASES)
@pytest.mark.parametrize("period", [2, 20, 60])
def test_volatility_against_numpy(seed: int, level: float, period: int) -> None:
    prices = random_walk(seed, level)
    returns = np.diff(np.log(prices))
    reference = np.full(len(prices), np.nan)
    for i in range(period, len(prices)):
        reference[i] = np.std(returns[i - period : i])  # population (ddof=0)
    vol = RollingVolatility(period)
    ours = [vol.update(float(p)) for p in prices]
    # numpy's log(p1) - log(p0) and our log(p1 / p0) round differently (~1e-16 absolute
    # per return); a nearly flat window turns that into a large *relative* difference of a
    # tiny sigma, so allow 1e-9 * the typical return size as absolute slack.
    compare(ours, reference, abs_tol=1e-9 * float(np.std(returns)))
    flat = [
        i for i in range(period, len(prices)) if np.all(prices[i - period : i + 1] == prices[i])
    ]
    if period <= 30:
        assert flat
    assert all(ours[i] == 0.0 for i in flat)
