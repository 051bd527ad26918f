"""Per-instrument market analysis (the ``analytics_update`` results), O(1) per tick.

Definitions (defaults in brackets; all are constructor parameters):

- ``trend``: compares the fast [12] and slow [26] EMAs of price (TA-Lib seeding). With
  ``spread = (fast - slow) / slow``: ``"bullish"`` if ``spread > trend_band`` [0.0005, i.e.
  5 bp], ``"bearish"`` if ``spread < -trend_band``, else ``"neutral"``. The dead band keeps
  the label from flickering when the EMAs are intertwined. ``None`` until the slow EMA is
  warm.
- ``momentum``: rate of change over the last ``momentum_period`` [10] ticks, in percent:
  ``(price - price_n_ticks_ago) / price_n_ticks_ago · 100``; ``None`` until
  ``momentum_period + 1`` ticks.
- ``volatility_regime``: ratio of the short [20] to the long [100] rolling volatility
  (population stdev of log returns): ``"low"`` if ratio < ``low_ratio`` [0.75], ``"high"`` if
  ratio > ``high_ratio`` [1.5], else ``"normal"``. A long window with zero volatility is
  ``"low"`` (the short window, its subset, is flat too). ``None`` until the long window is
  full.
- ``session_high`` / ``session_low``: extreme prices since the first tick; ``None`` before.
- ``change_percent``: ``(price - first_price) / first_price · 100``, ``first_price`` being
  the session's first tick.
- ``tick_count``: ticks seen this session.

The session is the analyzer's lifetime (the same as the session VWAP's): create a new one
to start a new session.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime

from ..core.vocabulary import Trend, VolatilityRegime
from .indicator_set import check_tick
from .indicators import EMA, RollingVolatility

__all__ = ["ANALYSIS_KEYS", "MarketAnalyzer"]

ANALYSIS_KEYS: tuple[str, ...] = (
    "trend",
    "momentum",
    "volatility_regime",
    "session_high",
    "session_low",
    "change_percent",
    "tick_count",
)
"""The keys of every ``MarketAnalyzer.results()`` dict."""


class MarketAnalyzer:
    """Trend, momentum, volatility regime and session statistics for one instrument."""

    __slots__ = (
        "_count",
        "_fast",
        "_first",
        "_high",
        "_last",
        "_last_timestamp",
        "_long_vol",
        "_low",
        "_momentum_window",
        "_short_vol",
        "_slow",
        "high_ratio",
        "low_ratio",
        "trend_band",
    )

    def __init__(
        self,
        *,
        fast_period: int = 12,
        slow_period: int = 26,
        trend_band: float = 0.0005,
        momentum_period: int = 10,
        short_vol_period: int = 20,
        long_vol_period: int = 100,
        low_ratio: float = 0.75,
        high_ratio: float = 1.5,
    ) -> None:
        if fast_period >= slow_period:
            raise ValueError("fast_period must be shorter than slow_period")
        if short_vol_period >= long_vol_period:
            raise ValueError("short_vol_period must be shorter than long_vol_period")
        if not (0.0 <= trend_band < 1.0):
            raise ValueError("trend_band must be in [0, 1)")
        if not (0.0 < low_ratio <= high_ratio):
            raise ValueError("need 0 < low_ratio <= high_ratio")
        if momentum_period < 1:
            raise ValueError("momentum_period must be >= 1")
        self._fast = EMA(fast_period)
        self._slow = EMA(slow_period)
        self._short_vol = RollingVolatility(short_vol_period)
        self._long_vol = RollingVolatility(long_vol_period)
        self._momentum_window: deque[float] = deque(maxlen=momentum_period + 1)
        self.trend_band = trend_band
        self.low_ratio = low_ratio
        self.high_ratio = high_ratio
        self._count = 0
        self._first: float | None = None
        self._last: float | None = None
        self._high = -math.inf
        self._low = math.inf
        self._last_timestamp: datetime | None = None

    @property
    def tick_count(self) -> int:
        """Ticks seen this session."""
        return self._count

    @property
    def last_timestamp(self) -> datetime | None:
        """Timestamp of the latest tick, for the caller's ``calculated_at``-style fields."""
        return self._last_timestamp

    def update(self, price: float, volume: float, timestamp: datetime) -> None:
        """Feed one tick. ``volume`` is validated but not used by the current measures."""
        check_tick(price, volume)
        self.apply(price, timestamp)

    def apply(self, price: float, timestamp: datetime) -> None:
        """``update`` without input validation, for callers that already ran ``check_tick``."""
        self._fast.update(price)
        self._slow.update(price)
        self._short_vol.update(price)
        self._long_vol.update(price)
        self._momentum_window.append(price)
        if self._first is None:
            self._first = price
        if price > self._high:
            self._high = price
        if price < self._low:
            self._low = price
        self._last = price
        self._count += 1
        self._last_timestamp = timestamp

    def trend(self) -> Trend | None:
        """``"bullish"``/``"bearish"``/``"neutral"`` from the EMA spread, or ``None``."""
        fast, slow = self._fast.value, self._slow.value
        if fast is None or slow is None:
            return None
        spread = (fast - slow) / slow
        if spread > self.trend_band:
            return "bullish"
        if spread < -self.trend_band:
            return "bearish"
        return "neutral"

    def momentum(self) -> float | None:
        """Percent change over the momentum window, or ``None`` before it is full."""
        window = self._momentum_window
        if len(window) != window.maxlen:
            return None
        return (window[-1] - window[0]) / window[0] * 100.0

    def volatility_regime(self) -> VolatilityRegime | None:
        """``"low"``/``"normal"``/``"high"`` from short/long volatility, or ``None``."""
        short, long = self._short_vol.value, self._long_vol.value
        if short is None or long is None:
            return None
        if long == 0.0:
            return "low"
        ratio = short / long
        if ratio < self.low_ratio:
            return "low"
        if ratio > self.high_ratio:
            return "high"
        return "normal"

    def results(self) -> dict[str, float | str | None]:
        """All measures as the ``analytics_update`` ``results`` dict (keys ``ANALYSIS_KEYS``)."""
        first, last = self._first, self._last
        if first is None or last is None:
            return dict.fromkeys(ANALYSIS_KEYS) | {"tick_count": 0}
        return {
            "trend": self.trend(),
            "momentum": self.momentum(),
            "volatility_regime": self.volatility_regime(),
            "session_high": self._high,
            "session_low": self._low,
            "change_percent": (last - first) / first * 100.0,
            "tick_count": self._count,
        }
