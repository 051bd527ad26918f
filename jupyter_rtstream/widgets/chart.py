"""A live bqplot price chart for one symbol: price, Bollinger bands, SMA/EMA overlays.

The chart keeps a bounded rolling window (``window`` points, in the kernel and therefore in
the browser): one row per tick holding its time, price and the indicator values of that
tick. ``market_data`` appends a row; the ``technical_indicators`` message the server
publishes right after it fills that row's indicator columns (a tick's indicators are drawn
at the tick's time). Frames are paced (:class:`~._render.FrameLimiter`); each frame sets
the marks' ``x``/``y`` once, under ``hold_sync()``: one comm message per changed mark.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
from bqplot import Axis, DateScale, Figure, LinearScale, Lines
from ipywidgets import HTML, Layout, VBox

from ..core.messages import MarketData, TechnicalIndicators
from ..core.vocabulary import normalize_symbol
from ._base import LiveMixin, esc, fmt_number
from ._render import DEFAULT_COALESCE, DEFAULT_FPS, hold_all

DEFAULT_WINDOW = 500
DEFAULT_OVERLAYS: tuple[str, ...] = ("sma_20", "ema_12")
BANDS: tuple[str, str] = ("bb_upper", "bb_lower")
PRICE_COLOR = "#1f4e99"
BAND_COLOR = "#8a9bb0"
OVERLAY_COLORS = ("#d97706", "#7c3aed", "#059669", "#db2777")
NAN = math.nan


# bqplot 0.13 places an axis by ``side``; 0.12 also wants ``orientation``.
_VERTICAL: dict[str, str] = {"side": "left"}
if "orientation" in Axis.class_trait_names():
    _VERTICAL["orientation"] = "vertical"


def _ms(message: MarketData | TechnicalIndicators) -> int:
    when = message.data.timestamp if isinstance(message, MarketData) else message.data.calculated_at
    return int(when.timestamp() * 1000)


class PriceChart(LiveMixin, VBox):  # type: ignore[misc]
    """Price line of ``symbol`` with Bollinger bands and moving-average overlays.

    ``chart.handle(message)`` accepts ``market_data`` and ``technical_indicators`` of its
    symbol (others are ignored); ``chart.flush()`` is called by the frame limiter. Public
    parts: ``fig`` (the bqplot ``Figure``), ``price_line``, ``band_lines``,
    ``overlay_lines``, ``header`` (escaped HTML), and ``shown`` (the last row a frame sent).
    """

    def __init__(
        self,
        symbol: str,
        *,
        window: int = DEFAULT_WINDOW,
        overlays: Sequence[str] = DEFAULT_OVERLAYS,
        bands: bool = True,
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        height: str = "260px",
        **kwargs: Any,
    ) -> None:
        if window < 2:
            raise ValueError("window must hold at least 2 points")
        self.symbol = normalize_symbol(symbol)
        self.window = window
        self.overlays = tuple(overlays)
        self.bands = bands
        #: Column names of a row after its time.
        self.columns: tuple[str, ...] = ("price", *BANDS, *self.overlays)
        self._rows: deque[list[float]] = deque(maxlen=window)
        self._last_tick_ms: int | None = None
        self._row_has_indicators = True
        self._unsent_rows = 0
        self.last_price: float | None = None
        self.change_percent: float | None = None
        #: Column name -> value of the newest row sent by the last frame (plus ``time_ms``).
        self.shown: dict[str, float | None] = {}

        self.x_scale = DateScale()
        self.y_scale = LinearScale()
        scales = {"x": self.x_scale, "y": self.y_scale}
        empty_x = np.array([], dtype="datetime64[ms]")
        self.band_lines = Lines(
            x=empty_x,
            y=np.empty((2, 0)),
            scales=scales,
            colors=[BAND_COLOR, BAND_COLOR],
            fill="between",
            fill_colors=[BAND_COLOR],
            fill_opacities=[0.15],
            stroke_width=1,
            labels=["Bollinger upper", "Bollinger lower"],
            visible=bands,
        )
        self.overlay_lines = Lines(
            x=empty_x,
            y=np.empty((max(1, len(self.overlays)), 0)),
            scales=scales,
            colors=list(OVERLAY_COLORS[: max(1, len(self.overlays))]),
            stroke_width=1.5,
            labels=[name.upper().replace("_", " ") for name in self.overlays] or ["-"],
            display_legend=bool(self.overlays),
            visible=bool(self.overlays),
        )
        self.price_line = Lines(
            x=empty_x,
            y=np.empty(0),
            scales=scales,
            colors=[PRICE_COLOR],
            stroke_width=2,
            labels=["price"],
            display_legend=True,
        )
        self.fig = Figure(
            marks=[self.band_lines, self.overlay_lines, self.price_line],
            axes=[
                Axis(scale=self.x_scale, tick_format="%H:%M:%S", num_ticks=5),
                Axis(scale=self.y_scale, tick_format=".2f", **_VERTICAL),
            ],
            animation_duration=0,
            legend_location="top-left",
            fig_margin={"top": 10, "bottom": 30, "left": 60, "right": 10},
            layout=Layout(width="100%", height=height),
        )
        self.header = HTML(value=self._header_html())
        super().__init__(children=[self.header, self.fig], **kwargs)
        self.add_class("rtstream-chart")
        self._init_live(fps, coalesce)

    # ------------------------------------------------------------------ data

    @property
    def points(self) -> int:
        """Rows currently in the window (bounded by ``window``)."""
        return len(self._rows)

    def _apply(self, message: Any) -> bool:
        if isinstance(message, MarketData):
            if message.data.symbol.upper() != self.symbol:
                return False
            self._append_price(message)
            return True
        if isinstance(message, TechnicalIndicators):
            if message.data.symbol.upper() != self.symbol:
                return False
            self._apply_indicators(message)
            return True
        return False

    def _evicting(self) -> None:
        self._unsent_rows += 1
        if len(self._rows) == self.window and self._unsent_rows > self.window:
            # The oldest row goes before any frame showed it.
            self.render_stats.dropped += 1

    def _append_price(self, message: MarketData) -> None:
        data = message.data
        ms = _ms(message)
        self._evicting()
        self._rows.append([float(ms), data.price, *([NAN] * (len(self.columns) - 1))])
        self._last_tick_ms = ms
        self._row_has_indicators = False
        self.last_price = data.price
        self.change_percent = data.change_percent

    def _apply_indicators(self, message: TechnicalIndicators) -> None:
        values = message.data.indicators
        filled = [_num(values.get(name)) for name in self.columns[1:]]
        if self._rows and not self._row_has_indicators:
            # The indicators of the tick that the newest row holds.
            self._rows[-1][2:] = filled
        else:
            ms = self._last_tick_ms if self._last_tick_ms is not None else _ms(message)
            self._evicting()
            self._rows.append([float(ms), NAN, *filled])
        self._row_has_indicators = True

    # ------------------------------------------------------------------ frames

    def _render(self) -> None:
        self._unsent_rows = 0
        if not self._rows:
            return
        table = np.asarray(self._rows, dtype=np.float64)
        x = table[:, 0].astype(np.int64).astype("datetime64[ms]")
        n_bands = len(BANDS)
        # hold_all sends in reverse order: the lines first, the header (which carries the
        # newest tick's timestamp, ``data-tick-ms``, for latency probes) last.
        with hold_all((self.header, self.price_line, self.band_lines, self.overlay_lines)):
            self.price_line.x = x
            self.price_line.y = table[:, 1]
            if self.bands:
                self.band_lines.x = x
                self.band_lines.y = table[:, 2 : 2 + n_bands].T
            if self.overlays:
                self.overlay_lines.x = x
                self.overlay_lines.y = table[:, 2 + n_bands :].T
            self.header.value = self._header_html()
        last = table[-1]
        self.shown = {"time_ms": float(last[0])}
        self.shown.update(
            (name, None if math.isnan(v) else float(v))
            for name, v in zip(self.columns, last[1:], strict=True)
        )

    def _header_html(self) -> str:
        change = ""
        if self.change_percent is not None and math.isfinite(self.change_percent):
            color = "#2f855a" if self.change_percent >= 0 else "#c53030"
            change = f' <span style="color:{color}">{self.change_percent:+.2f}%</span>'
        tick = "" if self._last_tick_ms is None else f' data-tick-ms="{self._last_tick_ms}"'
        return (
            f'<div class="rtstream-chart-header" data-symbol="{esc(self.symbol)}"{tick}>'
            f"<b>{esc(self.symbol)}</b> {fmt_number(self.last_price)}{change}</div>"
        )

    def clear(self) -> None:
        """Forget the window (e.g. after an unrecoverable gap); the next frame redraws."""
        self._rows.clear()
        self._last_tick_ms = None
        self._row_has_indicators = True

    def close(self) -> None:
        if hasattr(self, "limiter"):
            self.stop()
        for widget in (
            getattr(self, "price_line", None),
            getattr(self, "band_lines", None),
            getattr(self, "overlay_lines", None),
            getattr(self, "fig", None),
            getattr(self, "header", None),
            *getattr(getattr(self, "fig", None), "axes", ()),
            getattr(self, "x_scale", None),
            getattr(self, "y_scale", None),
        ):
            if widget is not None:
                widget.close()
        super().close()


def _num(value: float | None) -> float:
    return NAN if value is None else float(value)
