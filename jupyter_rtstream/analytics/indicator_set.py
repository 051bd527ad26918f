"""One instrument's standard indicators, updated together once per tick.

The key names carry their periods (``sma_20``, ``ema_12``, ...) because they are the wire
names of the ``technical_indicators`` message and of alert rules (docs/analytics.md).
"""

from __future__ import annotations

import math

from ..core.vocabulary import INDICATOR_KEYS
from .indicators import EMA, MACD, RSI, VWAP, BollingerBands, RollingVolatility

__all__ = ["INDICATOR_KEYS", "IndicatorSet", "check_tick"]


def check_tick(price: float, volume: float) -> None:
    """Reject a tick that would poison the running state: every later value would be NaN.

    Price must be finite and > 0 (log returns need it); volume finite and >= 0.
    """
    if not (0.0 < price < math.inf):
        raise ValueError(f"price must be finite and > 0, got {price!r}")
    if not (0.0 <= volume < math.inf):
        raise ValueError(f"volume must be finite and >= 0, got {volume!r}")


class IndicatorSet:
    """SMA 20, EMA 12/26, RSI 14, MACD 12/26/9, Bollinger 20/2 sigma, session VWAP, volatility 20.

    ``update`` returns a fresh dict with exactly ``INDICATOR_KEYS``; a value is ``None``
    until that indicator is warm. ``sma_20`` is the Bollinger middle band: both are the
    exactly computed mean of the same 20 prices, so one window serves both.
    """

    __slots__ = ("_bb", "_ema_fast", "_ema_slow", "_last", "_macd", "_rsi", "_vol", "_vwap")

    def __init__(self) -> None:
        self._ema_fast = EMA(12)
        self._ema_slow = EMA(26)
        self._rsi = RSI(14)
        self._macd = MACD(12, 26, 9)
        self._bb = BollingerBands(20, 2.0)
        self._vwap = VWAP()
        self._vol = RollingVolatility(20)
        self._last: dict[str, float | None] = dict.fromkeys(INDICATOR_KEYS)

    def update(self, price: float, volume: float) -> dict[str, float | None]:
        """Feed one tick; return every indicator's value after it (a new dict each call)."""
        check_tick(price, volume)
        return self.apply(price, volume)

    def apply(self, price: float, volume: float) -> dict[str, float | None]:
        """``update`` without input validation, for callers that already ran ``check_tick``."""
        macd = self._macd.update(price)
        bb = self._bb.update(price)
        result: dict[str, float | None] = {
            "sma_20": None if bb is None else bb.middle,
            "ema_12": self._ema_fast.update(price),
            "ema_26": self._ema_slow.update(price),
            "rsi_14": self._rsi.update(price),
            "macd": None if macd is None else macd.macd,
            "macd_signal": None if macd is None else macd.signal,
            "macd_hist": None if macd is None else macd.hist,
            "bb_upper": None if bb is None else bb.upper,
            "bb_middle": None if bb is None else bb.middle,
            "bb_lower": None if bb is None else bb.lower,
            "vwap": self._vwap.update(price, volume),
            "volatility_20": self._vol.update(price),
        }
        self._last = result
        return dict(result)  # callers may annotate their copy without touching our state

    def snapshot(self) -> dict[str, float | None]:
        """The values after the latest tick (all ``None`` before any), as a new dict."""
        return dict(self._last)
