"""A live bqplot price chart for one symbol: price, Bollinger bands, SMA/EMA overlays.

The chart keeps a bounded rolling window (``window`` points, in the kernel and therefore in
the browser): one row per tick holding its time, price and the indicator values of that
tick. ``market_data`` appends a row; the ``technical_indicators`` message the server
publishes right after it fills that row's indicator columns (a tick's indicators are drawn
at the tick's time). Frames are paced (:class:`~._render.FrameLimiter`).

Every line is one row of a single bqplot ``Lines`` mark (bands, overlays, price last, on
top), so a frame is one comm message for the data (``x`` once, ``y`` as float32) plus the
header; the browser redraws one mark per frame. The axes' ticks, formats and the y scale's
bounds are computed here (:mod:`._ticks`) and sent only when they change. The legend is
HTML in the header, so it never covers the latest points; colours read on light and dark
JupyterLab themes (the header uses the theme's CSS variables).
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
from ._render import DEFAULT_COALESCE, DEFAULT_FPS, FrameBudget, hold_all
from ._ticks import PriceAxis, TimeAxis, price_axis, time_axis

DEFAULT_WINDOW = 500
DEFAULT_OVERLAYS: tuple[str, ...] = ("sma_20", "ema_12")
BANDS: tuple[str, str] = ("bb_upper", "bb_lower")
# Mid-tone colours: readable on JupyterLab's light and dark themes alike.
PRICE_COLOR = "#3b82f6"
BAND_COLOR = "#94a3b8"
OVERLAY_COLORS = ("#f59e0b", "#a855f7", "#10b981", "#ec4899")
#: Pixels per character of an axis label (for the figure's left margin).
CHAR_PX = 7.5
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
    parts: ``fig`` (the bqplot ``Figure``), ``lines`` (its one ``Lines`` mark: one row of
    ``y`` per name of ``series_names``), :meth:`series` (a line's values), ``header``
    (escaped HTML with the legend; ``data-tick-ms`` is the newest tick shown), and
    ``shown`` (the last row a frame sent).
    """

    frame_cost = 4  # lines, header; the y scale and the axes when their ticks change

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
        budget: FrameBudget | None = None,
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
        #: The lines drawn, bottom to top (rows of ``lines.y``).
        self.series_names: tuple[str, ...] = (
            *(BANDS if bands else ()),
            *self.overlays,
            "price",
        )
        self._rows: deque[list[float]] = deque(maxlen=window)
        self._last_tick_ms: int | None = None
        self._row_has_indicators = True
        self._unsent_rows = 0
        self.last_price: float | None = None
        self.change_percent: float | None = None
        #: Column name -> value of the newest row sent by the last frame (plus ``time_ms``).
        self.shown: dict[str, float | None] = {}
        self.y_axis: PriceAxis | None = None
        self.x_axis: TimeAxis | None = None
        self._height_px = _px(height, 260.0) - 40.0  # the header's room

        self.x_scale = DateScale()
        self.y_scale = LinearScale()
        scales = {"x": self.x_scale, "y": self.y_scale}
        colors = [
            *([BAND_COLOR, BAND_COLOR] if bands else []),
            *OVERLAY_COLORS[: len(self.overlays)],
            PRICE_COLOR,
        ]
        self._colors = dict(zip(self.series_names, colors, strict=True))
        self.lines = Lines(
            x=np.array([], dtype="datetime64[ms]"),
            y=np.empty((len(self.series_names), 0), dtype=np.float32),
            scales=scales,
            colors=colors,
            # bqplot fills each line down to the next one: only the band gets a fill.
            fill="between" if bands else "none",
            fill_colors=colors,
            fill_opacities=[0.15 if bands and i == 0 else 0.0 for i in range(len(colors))],
            stroke_width=1.6,
            labels=[_label(name) for name in self.series_names],
            display_legend=False,
        )
        self.x_axis_widget = Axis(scale=self.x_scale, tick_format="%H:%M:%S", num_ticks=5)
        self.y_axis_widget = Axis(scale=self.y_scale, tick_format=".2f", **_VERTICAL)
        self.fig = Figure(
            marks=[self.lines],
            axes=[self.x_axis_widget, self.y_axis_widget],
            animation_duration=0,
            # Right margin: half a time label, so the last one is never cut.
            fig_margin={"top": 10, "bottom": 30, "left": 60, "right": 36},
            layout=Layout(width="100%", height=height),
        )
        self.header = HTML(value=self._header_html())
        super().__init__(children=[self.header, self.fig], **kwargs)
        self.add_class("rtstream-chart")
        self._init_live(fps, coalesce, budget)

    def series(self, name: str) -> np.ndarray:
        """The values of one line as the last frame sent them (``"price"``, ``"sma_20"``...)."""
        return np.asarray(self.lines.y[self.series_names.index(name)])

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

    def _render(self) -> tuple[int, int] | None:
        self._unsent_rows = 0
        if not self._rows:
            return (0, 0)
        table = np.asarray(self._rows, dtype=np.float64)
        x = table[:, 0].astype(np.int64).astype("datetime64[ms]")
        index = {name: i + 1 for i, name in enumerate(self.columns)}
        y = table[:, [index[name] for name in self.series_names]].T.astype(np.float32)
        messages = 2 + self._update_axes(table)
        # The axes first, then the lines, the header (newest tick's timestamp) last:
        # hold_all sends in reverse order.
        with hold_all((self.header, self.lines)):
            self.lines.x = x
            self.lines.y = y
            self.header.value = self._header_html()
        last = table[-1]
        self.shown = {"time_ms": float(last[0])}
        self.shown.update(
            (name, None if math.isnan(v) else float(v))
            for name, v in zip(self.columns, last[1:], strict=True)
        )
        return messages, x.nbytes + y.nbytes + len(self.header.value)

    def _update_axes(self, table: np.ndarray) -> int:
        """Ticks and bounds that follow the visible range; messages sent (0 if unchanged)."""
        sent = 0
        values = table[:, 1:]
        finite = values[np.isfinite(values)]
        if finite.size:
            axis = price_axis(
                float(finite.min()),
                float(finite.max()),
                height_px=self._height_px,
                current=self.y_axis,
            )
            if axis != self.y_axis:
                self.y_axis = axis
                with hold_all((self.fig, self.y_axis_widget, self.y_scale)):
                    self.y_scale.min, self.y_scale.max = axis.lo, axis.hi
                    self.y_axis_widget.tick_values = np.asarray(axis.ticks)
                    self.y_axis_widget.tick_format = axis.tick_format
                    left = int(16 + CHAR_PX * axis.label_chars)
                    if self.fig.fig_margin.get("left") != left:
                        self.fig.fig_margin = {**self.fig.fig_margin, "left": left}
                sent += 3
        times = time_axis(float(table[0, 0]), float(table[-1, 0]))
        if times != self.x_axis:
            self.x_axis = times
            with self.x_axis_widget.hold_sync():
                self.x_axis_widget.tick_values = np.asarray(times.ticks_ms, dtype="datetime64[ms]")
                self.x_axis_widget.tick_format = times.tick_format
            sent += 1
        return sent

    def _header_html(self) -> str:
        change = ""
        if self.change_percent is not None and math.isfinite(self.change_percent):
            color = (
                "var(--jp-success-color1, #2f855a)"
                if self.change_percent >= 0
                else "var(--jp-error-color1, #c53030)"
            )
            change = f' <span style="color:{color}">{self.change_percent:+.2f}%</span>'
        tick = "" if self._last_tick_ms is None else f' data-tick-ms="{self._last_tick_ms}"'
        legend = "".join(
            f'<span style="margin-left:0.9em;white-space:nowrap">'
            f'<span style="display:inline-block;width:1.2em;height:0.25em;'
            f'vertical-align:middle;background:{self._colors[name]}"></span> '
            f"{esc(_label(name))}</span>"
            for name in reversed(self.series_names)
            if name != "bb_lower"
        )
        return (
            f'<div class="rtstream-chart-header" data-symbol="{esc(self.symbol)}"{tick} '
            'style="color:var(--jp-ui-font-color1, inherit)">'
            f"<b>{esc(self.symbol)}</b> {fmt_number(self.last_price)}{change}"
            f'<span class="rtstream-legend" style="float:right;font-size:0.85em;'
            f'color:var(--jp-ui-font-color2, inherit)">{legend}</span></div>'
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
            getattr(self, "lines", None),
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


def _label(name: str) -> str:
    if name in BANDS:
        return "Bollinger"
    return name.upper().replace("_", " ") if name != "price" else "price"


def _px(height: str, default: float) -> float:
    try:
        return float(height.removesuffix("px"))
    except ValueError:
        return default
