"""A live indicator table: one row per symbol (price, RSI, MACD, VWAP, volatility, trend)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ipywidgets import HTML

from ..core.messages import AnalyticsUpdate, MarketData, TechnicalIndicators
from ..core.vocabulary import TRENDS, normalize_symbol
from ._base import LiveMixin, esc, fmt_number
from ._render import DEFAULT_COALESCE, DEFAULT_FPS

#: (key, header, digits); ``volatility_20`` is shown in percent.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("price", "Price", 2),
    ("change_percent", "Chg %", 2),
    ("rsi_14", "RSI 14", 1),
    ("macd", "MACD", 4),
    ("macd_signal", "Signal", 4),
    ("macd_hist", "Hist", 4),
    ("vwap", "VWAP", 2),
    ("volatility_20", "Vol 20 %", 3),
    ("sma_20", "SMA 20", 2),
    ("ema_12", "EMA 12", 2),
)
#: Colour of each trend (``TRENDS`` order: bullish, bearish, neutral).
TREND_COLORS: dict[str, str] = dict(zip(TRENDS, ("#2f855a", "#c53030", "#4a5568"), strict=True))
_TABLE_STYLE = "border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:0.9em"
_CELL = "padding:0.15em 0.6em;text-align:right;border-bottom:1px solid #e2e8f0"


class IndicatorTable(LiveMixin, HTML):  # type: ignore[misc]
    """Latest indicators per symbol, updated at a bounded frame rate.

    Accepts ``market_data`` (price, change), ``technical_indicators`` and
    ``analytics_update`` (trend, momentum, volatility regime). ``symbols`` fixes the row
    order (others are appended as they arrive, unless ``only_symbols``). ``shown`` holds the
    values of the last frame sent, per symbol.
    """

    def __init__(
        self,
        symbols: Iterable[str] = (),
        *,
        only_symbols: bool = False,
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_live(fps, coalesce)
        self.only_symbols = only_symbols
        self.rows: dict[str, dict[str, Any]] = {normalize_symbol(s): {} for s in symbols}
        self.shown: dict[str, dict[str, Any]] = {}
        self.value = self._html()

    @property
    def symbols(self) -> list[str]:
        return list(self.rows)

    def add_symbol(self, symbol: str) -> None:
        key = normalize_symbol(symbol)
        if key not in self.rows:
            self.rows[key] = {}
            self.invalidate()

    def remove_symbol(self, symbol: str) -> None:
        if self.rows.pop(normalize_symbol(symbol), None) is not None:
            self.invalidate()

    def _row(self, symbol: str) -> dict[str, Any] | None:
        key = normalize_symbol(symbol)
        row = self.rows.get(key)
        if row is None and not self.only_symbols:
            row = self.rows[key] = {}
        return row

    def _apply(self, message: Any) -> bool:
        if isinstance(message, MarketData):
            row = self._row(message.data.symbol)
            if row is None:
                return False
            row["price"] = message.data.price
            row["change_percent"] = message.data.change_percent
            return True
        if isinstance(message, TechnicalIndicators):
            row = self._row(message.data.symbol)
            if row is None:
                return False
            row.update(message.data.indicators)
            return True
        if isinstance(message, AnalyticsUpdate):
            row = self._row(message.data.symbol)
            if row is None:
                return False
            results = message.data.results
            row["trend"] = results.trend
            row["momentum"] = results.momentum
            row["volatility_regime"] = results.volatility_regime
            return True
        return False

    def _render(self) -> None:
        self.value = self._html()
        self.shown = {symbol: dict(row) for symbol, row in self.rows.items()}

    def _html(self) -> str:
        head = "".join(f'<th style="{_CELL}">{esc(title)}</th>' for _, title, _ in COLUMNS)
        lines = [
            f'<table class="rtstream-indicators" style="{_TABLE_STYLE}">',
            f'<thead><tr><th style="{_CELL};text-align:left">Symbol</th>{head}'
            f'<th style="{_CELL}">Trend</th></tr></thead><tbody>',
        ]
        for symbol, row in self.rows.items():
            cells = []
            for key, _, digits in COLUMNS:
                value = row.get(key)
                if key == "volatility_20" and isinstance(value, float):
                    value *= 100.0
                cells.append(f'<td style="{_CELL}">{fmt_number(_as_float(value), digits)}</td>')
            trend = row.get("trend")
            color = TREND_COLORS.get(str(trend), "#4a5568")
            trend_text = esc(trend) if trend is not None else "&mdash;"
            regime = row.get("volatility_regime")
            if regime:
                trend_text += f" <small>({esc(regime)} vol)</small>"
            lines.append(
                f'<tr><td style="{_CELL};text-align:left"><b>{esc(symbol)}</b></td>'
                + "".join(cells)
                + f'<td style="{_CELL};color:{color}">{trend_text}</td></tr>'
            )
        lines.append("</tbody></table>")
        return "".join(lines)

    def close(self) -> None:
        if hasattr(self, "limiter"):
            self.stop()
        super().close()


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
