"""Incremental technical indicators: O(1) work per update, TA-Lib-compatible seeding.

Every class consumes one value per ``update`` and returns ``None`` until it is warm, then
the same number TA-Lib's batch function outputs at that index (see docs/analytics.md). Nothing
recomputes a window: windows are deques plus running sums, so the cost of a tick does not
depend on the period.

Inputs are assumed finite (``IndicatorSet`` validates them once per tick); these classes do
not re-check them on the hot path.

Numerics: windowed sums (SMA, Bollinger, volatility) are kept exactly as integers (see
``ExactWindow``), so means and variances are correctly rounded, never drift and never
suffer the cancellation of ``E[x²] - E[x]²`` at price levels far from zero; flat windows give
exact zeros. The session VWAP's sums of positive terms use Neumaier compensation. The
EMA-type recurrences (EMA, RSI, MACD) follow TA-Lib's operation order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from .exact import ExactWindow

__all__ = [
    "EMA",
    "MACD",
    "RSI",
    "SMA",
    "VWAP",
    "BollingerBands",
    "BollingerResult",
    "MACDResult",
    "RollingVolatility",
]


def _check_period(name: str, period: int, minimum: int = 1) -> int:
    """Reject non-int (including bool) or too-small periods early, at construction."""
    if isinstance(period, bool) or not isinstance(period, int):
        raise TypeError(f"{name} must be an int, got {type(period).__name__}")
    if period < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {period}")
    return period


class MACDResult(NamedTuple):
    """One MACD output: line (fast EMA - slow EMA), its signal EMA and the histogram."""

    macd: float
    signal: float
    hist: float


class BollingerResult(NamedTuple):
    """One Bollinger output: ``middle ± k·sigma`` around the simple moving average."""

    upper: float
    middle: float
    lower: float


class SMA:
    """Simple moving average over the last ``period`` values (TA-Lib ``SMA``).

    The window sum is kept exactly (see ``ExactWindow``), so the value is the correctly
    rounded mean of the window however long the stream runs.
    """

    __slots__ = ("_value", "_window", "period")

    def __init__(self, period: int = 20) -> None:
        self.period = _check_period("period", period)
        self._window = ExactWindow(period, squares=False)
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current average, or ``None`` before ``period`` values were seen."""
        return self._value

    def update(self, value: float) -> float | None:
        """Add one value; return the average of the last ``period`` values once warm."""
        if not self._window.push(value):
            return None
        self._value = self._window.mean()
        return self._value


class EMA:
    """Exponential moving average, ``k = 2 / (period + 1)`` (TA-Lib ``EMA``).

    Seeded like TA-Lib: the first output (after ``period`` values) is the SMA of those
    values; afterwards ``ema = (x - ema)·k + ema``, TA-Lib's operation order. TA-Lib's C
    build fuses that multiply-add (FMA), which CPython 3.11 cannot express, so a value may
    differ from TA-Lib's in the last bit (~1e-16 relative).
    """

    __slots__ = ("_count", "_k", "_seed", "_value", "period")

    def __init__(self, period: int = 12) -> None:
        self.period = _check_period("period", period)
        self._k = 2.0 / (period + 1)
        self._count = 0
        self._seed = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current average, or ``None`` while seeding."""
        return self._value

    def update(self, value: float) -> float | None:
        """Add one value; return the EMA once ``period`` values were seen."""
        prev = self._value
        if prev is not None:
            prev = ((value - prev) * self._k) + prev
            self._value = prev
            return prev
        self._count += 1
        self._seed += value
        if self._count == self.period:
            self._value = self._seed / self.period
        return self._value


class RSI:
    """Relative strength index with Wilder smoothing (TA-Lib ``RSI``, classic mode).

    The first output comes after ``period + 1`` values (``period`` differences): the plain
    averages of gains and losses; then ``avg = (avg·(period-1) + x) / period``. The division
    is a multiplication by ``1/period``, as in TA-Lib's C code, so outputs match bit for bit.
    When nothing moved at all (both averages 0) the value is 0, as TA-Lib reports.
    """

    __slots__ = ("_count", "_gain", "_inv", "_loss", "_prev", "_value", "period")

    def __init__(self, period: int = 14) -> None:
        self.period = _check_period("period", period, minimum=2)
        self._inv = 1.0 / period
        self._prev: float | None = None
        self._count = 0
        self._gain = 0.0
        self._loss = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current RSI in [0, 100], or ``None`` while seeding."""
        return self._value

    def update(self, value: float) -> float | None:
        """Add one price; return the RSI once ``period`` differences were seen."""
        prev = self._prev
        self._prev = value
        if prev is None:
            return None
        diff = value - prev
        period = self.period
        self._count += 1
        if self._count < period:
            if diff < 0.0:
                self._loss -= diff
            else:
                self._gain += diff
            return None
        if self._count == period:
            if diff < 0.0:
                self._loss -= diff
            else:
                self._gain += diff
            gain = self._gain * self._inv
            loss = self._loss * self._inv
        else:
            loss = self._loss * (period - 1)
            gain = self._gain * (period - 1)
            if diff < 0.0:
                loss -= diff
            else:
                gain += diff
            loss *= self._inv
            gain *= self._inv
        self._gain, self._loss = gain, loss
        total = gain + loss
        self._value = 100.0 * (gain / total) if total != 0.0 else 0.0
        return self._value


class MACD:
    """Moving average convergence/divergence (TA-Lib ``MACD``), outputs as ``MACDResult``.

    Seeding follows TA-Lib so every output matches: the slow EMA is seeded with the SMA of
    the first ``slow`` values and the fast EMA with the SMA of the ``fast`` values ending at
    the same index (the fast EMA *starts where the slow one does*), so the MACD line exists
    from index ``slow - 1``; the signal EMA is seeded with the SMA of the first ``signal``
    line values. Like ``talib.MACD`` the first output (all three values) appears at index
    ``slow + signal - 2``; before that ``update`` returns ``None`` (``line`` already holds
    the MACD line while the signal seeds).
    """

    __slots__ = (
        "_count",
        "_fast",
        "_fast_k",
        "_line",
        "_signal",
        "_signal_count",
        "_signal_k",
        "_signal_seed",
        "_slow",
        "_slow_k",
        "_value",
        "fast_period",
        "signal_period",
        "slow_period",
    )

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        self.fast_period = _check_period("fast", fast)
        self.slow_period = _check_period("slow", slow)
        self.signal_period = _check_period("signal", signal)
        if fast >= slow:
            raise ValueError(f"fast period ({fast}) must be shorter than slow period ({slow})")
        self._fast_k = 2.0 / (fast + 1)
        self._slow_k = 2.0 / (slow + 1)
        self._signal_k = 2.0 / (signal + 1)
        self._count = 0
        # While seeding, _fast/_slow hold the seed sums; afterwards the EMA values.
        self._fast = 0.0
        self._slow = 0.0
        self._line: float | None = None
        self._signal_count = 0
        self._signal_seed = 0.0
        self._signal: float | None = None
        self._value: MACDResult | None = None

    @property
    def value(self) -> MACDResult | None:
        """The current (macd, signal, hist), or ``None`` while seeding."""
        return self._value

    @property
    def line(self) -> float | None:
        """The MACD line alone, available ``signal - 1`` updates before ``value``."""
        return self._line

    def update(self, value: float) -> MACDResult | None:
        """Add one price; return (macd, signal, hist) once all three EMAs are seeded."""
        if self._line is not None:
            fast = ((value - self._fast) * self._fast_k) + self._fast
            slow = ((value - self._slow) * self._slow_k) + self._slow
            self._fast, self._slow = fast, slow
            line = fast - slow
        else:
            self._count += 1
            count = self._count
            self._slow += value
            if count > self.slow_period - self.fast_period:
                self._fast += value
            if count < self.slow_period:
                return None
            self._fast /= self.fast_period
            self._slow /= self.slow_period
            line = self._fast - self._slow
        self._line = line
        signal = self._signal
        if signal is not None:
            signal = ((line - signal) * self._signal_k) + signal
        else:
            self._signal_count += 1
            self._signal_seed += line
            if self._signal_count < self.signal_period:
                return None
            signal = self._signal_seed / self.signal_period
        self._signal = signal
        self._value = MACDResult(line, signal, line - signal)
        return self._value


class BollingerBands:
    """Bollinger bands (TA-Lib ``BBANDS`` with ``matype=0``): SMA ± k·sigma, population sigma."""

    __slots__ = ("_value", "_window", "k", "period")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = _check_period("period", period)
        if not math.isfinite(k) or k < 0.0:
            raise ValueError(f"k must be a finite number >= 0, got {k!r}")
        self.k = float(k)
        self._window = ExactWindow(period)
        self._value: BollingerResult | None = None

    @property
    def value(self) -> BollingerResult | None:
        """The current (upper, middle, lower), or ``None`` before ``period`` values."""
        return self._value

    def update(self, value: float) -> BollingerResult | None:
        """Add one price; return the bands once the window is full."""
        window = self._window
        if not window.push(value):
            return None
        middle = window.mean()
        width = self.k * math.sqrt(window.variance())
        self._value = BollingerResult(middle + width, middle, middle - width)
        return self._value


class VWAP:
    """Session volume-weighted average price: Σ(price·volume) / Σvolume since the first tick.

    Zero volume is allowed (the price then carries no weight); while no volume was seen at
    all the VWAP is undefined and ``None``.
    """

    __slots__ = ("_pv", "_pv_comp", "_value", "_vol", "_vol_comp")

    def __init__(self) -> None:
        self._pv = 0.0
        self._pv_comp = 0.0
        self._vol = 0.0
        self._vol_comp = 0.0
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current VWAP, or ``None`` while total volume is 0."""
        return self._value

    def update(self, price: float, volume: float) -> float | None:
        """Add one trade; ``volume`` must be finite and >= 0."""
        if not volume >= 0.0 or volume == math.inf:
            raise ValueError(f"volume must be finite and >= 0, got {volume!r}")
        if volume == 0.0:
            return self._value
        pv = price * volume
        s, c = self._pv, self._pv_comp
        t = s + pv
        c += (s - t) + pv if abs(s) >= abs(pv) else (pv - t) + s
        self._pv, self._pv_comp = t, c
        s, c = self._vol, self._vol_comp
        t = s + volume
        c += (s - t) + volume if abs(s) >= abs(volume) else (volume - t) + s
        self._vol, self._vol_comp = t, c
        self._value = (self._pv + self._pv_comp) / (self._vol + self._vol_comp)
        return self._value


class RollingVolatility:
    """Population standard deviation of the last ``period`` log returns, not annualized.

    Ticks arrive at irregular intervals, so no annualization factor is meaningful. Needs
    ``period + 1`` prices; prices must be > 0.
    """

    __slots__ = ("_prev", "_returns", "_value", "period")

    def __init__(self, period: int = 20) -> None:
        self.period = _check_period("period", period)
        self._returns = ExactWindow(period)
        self._prev: float | None = None
        self._value: float | None = None

    @property
    def value(self) -> float | None:
        """The current volatility, or ``None`` before ``period`` returns were seen."""
        return self._value

    def update(self, value: float) -> float | None:
        """Add one price (> 0); return the stdev of the last ``period`` log returns once warm."""
        prev = self._prev
        self._prev = value
        if prev is None:
            return None
        if not self._returns.push(math.log(value / prev)):
            return None
        self._value = math.sqrt(self._returns.variance())
        return self._value
