"""A live bqplot price chart for one symbol: price, Bollinger bands, SMA/EMA overlays.

The chart keeps a bounded rolling window (``window`` points, in the kernel and therefore in
the browser): one row per tick holding its time, price and the indicator values of that
tick. ``market_data`` appends a row; the ``technical_indicators`` message the server
publishes right after it fills that row's indicator columns (a tick's indicators are drawn
at the tick's time). Frames are paced (:class:`~._render.FrameLimiter`).

Every line is one row of a bqplot ``Lines`` mark (bands, overlays, price last, on top).
Redrawing a 500-point window for every tick was what the browser spent its time on (bqplot
rebuilds every point object, recomputes the scale domains and redraws the axes), so the
window is drawn in two marks:

- ``lines``, the **history**: the whole window, redrawn only when the chart *rebases*
  (every ``tail`` new rows, when the newest tick passes the right edge of the x domain, or
  when a value leaves the y bounds). Its x data ends with one all-NaN row ``tail`` rows'
  worth of time to the right of the newest tick: that sets the x domain (bqplot takes it
  from the data; no line is drawn there), so the time axis and both scales stay put
  between rebases;
- ``tail_lines``, the **tail**: the rows since the last rebase, from the history's last row
  (so the lines join), with ``preserve_domain`` so it never moves a scale. A frame between
  rebases sends only the tail (a few rows) and the header: two small comm messages, and the
  browser redraws a few dozen points.

The axes' ticks, formats and the y scale's bounds are computed here (:mod:`._ticks`) and
sent only when they change (at a rebase). The legend is static HTML beside the header, so it
never covers the latest points and no frame re-sends it; colours read on light and dark
JupyterLab themes (header and legend use the theme's CSS variables). The tail draws lines
only: the band's shading follows at the next rebase.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from itertools import islice
from typing import Any

import numpy as np
from bqplot import Axis, DateScale, Figure, LinearScale, Lines
from ipywidgets import HTML, HBox, Layout, VBox

from ..core.messages import MarketData, TechnicalIndicators
from ..core.vocabulary import normalize_symbol
from ._base import LiveMixin, esc, fmt_number
from ._render import DEFAULT_COALESCE, DEFAULT_FPS, FrameBudget, hold_all
from ._ticks import PriceAxis, TimeAxis, price_axis, time_axis

DEFAULT_WINDOW = 500
#: Rows the tail holds before the chart rebases, as a fraction of the window.
DEFAULT_TAIL_FRACTION = 0.2
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
    parts: ``fig`` (the bqplot ``Figure``), ``lines`` and ``tail_lines`` (the history and
    tail ``Lines`` marks, see the module doc: one row of ``y`` per name of
    ``series_names``), :meth:`times` and :meth:`series` (the times and one line's values as
    drawn, history and tail joined), ``header`` (escaped HTML: symbol, price, change;
    ``data-tick-ms`` is the newest tick shown), ``legend`` (static HTML beside it, so it
    never covers the latest points), ``shown`` (the last row a frame sent) and
    ``rebases`` (frames that redrew the history).
    """

    #: Comm messages of a frame: the tail and the header (a rebase adds the history, and
    #: the axes and scales when their ticks change; the budget settles the difference).
    frame_cost = 3

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
        tail: int | None = None,
        **kwargs: Any,
    ) -> None:
        if window < 2:
            raise ValueError("window must hold at least 2 points")
        if tail is not None and not 1 <= tail < window:
            raise ValueError("tail must be between 1 and window - 1 rows")
        self.symbol = normalize_symbol(symbol)
        self.window = window
        #: Most rows the tail holds before the chart rebases (redraws the history).
        self.tail = tail if tail is not None else max(1, int(window * DEFAULT_TAIL_FRACTION))
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
        #: Rows appended since the last rebase (the tail is these plus the history's last).
        self._since_rebase = 0
        #: Rows at the start of the tail that the history also holds.
        self._tail_overlap = 0
        #: Rows the tail may hold before the next rebase (``tail``, less while filling up).
        self._tail_limit = 1
        #: Right edge of the x domain (ms) set by the last rebase; None: rebase next frame.
        self._x_max_ms: float | None = None
        self.rebases = 0
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
        style: dict[str, Any] = {
            "scales": scales,
            "colors": colors,
            # bqplot fills each line down to the next one: only the band gets a fill.
            "fill": "between" if bands else "none",
            "fill_colors": colors,
            "fill_opacities": [0.15 if bands and i == 0 else 0.0 for i in range(len(colors))],
            "stroke_width": 1.6,
            "labels": [_label(name) for name in self.series_names],
            "display_legend": False,
        }
        self.lines = Lines(x=self._empty_x(), y=self._empty_y(), **style)
        # The tail draws lines only: the band's shading (an area path per line, the most
        # expensive part of a redraw) is the history's and follows at the next rebase.
        self.tail_lines = Lines(
            x=self._empty_x(),
            y=self._empty_y(),
            preserve_domain={"x": True, "y": True},
            **{**style, "fill": "none"},
        )
        self.x_axis_widget = Axis(scale=self.x_scale, tick_format="%H:%M:%S", num_ticks=5)
        self.y_axis_widget = Axis(scale=self.y_scale, tick_format=".2f", **_VERTICAL)
        self.fig = Figure(
            marks=[self.lines, self.tail_lines],
            axes=[self.x_axis_widget, self.y_axis_widget],
            animation_duration=0,
            # Right margin: half a time label, so the last one is never cut.
            fig_margin={"top": 10, "bottom": 30, "left": 60, "right": 36},
            layout=Layout(width="100%", height=height),
        )
        self.header = HTML(value=self._header_html())
        # The legend never changes: a widget of its own, so a frame's header is a few bytes.
        self.legend = HTML(value=self._legend_html())
        self.header_row = HBox(
            [self.header, self.legend],
            layout=Layout(justify_content="space-between", align_items="baseline"),
        )
        super().__init__(children=[self.header_row, self.fig], **kwargs)
        self.add_class("rtstream-chart")
        self._init_live(fps, coalesce, budget)

    def _empty_x(self) -> np.ndarray:
        return np.array([], dtype="datetime64[ms]")

    def _empty_y(self) -> np.ndarray:
        return np.empty((len(self.series_names), 0), dtype=np.float32)

    def _drawn(self) -> tuple[np.ndarray, np.ndarray]:
        """Times and values as drawn: the history without its padding row, then the tail
        without its first row (the history's last, drawn again so the lines join)."""
        lines = len(self.series_names)  # bqplot squeezes a one-line y to one dimension
        hx, hy = np.asarray(self.lines.x), np.reshape(self.lines.y, (lines, -1))
        tx, ty = np.asarray(self.tail_lines.x), np.reshape(self.tail_lines.y, (lines, -1))
        if hx.size:
            hx, hy = hx[:-1], hy[:, :-1]
        overlap = self._tail_overlap
        return (
            np.concatenate([hx, tx[overlap:]]),
            np.concatenate([hy, ty[:, overlap:]], axis=1),
        )

    def times(self) -> np.ndarray:
        """The times of the rows as the frames drew them (``datetime64[ms]``)."""
        return self._drawn()[0]

    def series(self, name: str) -> np.ndarray:
        """The values of one line as the frames drew them (``"price"``, ``"sma_20"``...):
        the history, then the tail. Between rebases this holds more than ``window`` rows
        (the history keeps its oldest rows until the next rebase)."""
        values: np.ndarray = self._drawn()[1][self.series_names.index(name)]
        return values

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
        self._since_rebase += 1
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
        # The tail: the history's last row (two at least: bqplot squeezes a one-point y into
        # one line of several points), then every row since the rebase.
        count = min(len(self._rows), max(2, self._since_rebase + 1))
        start = len(self._rows) - count
        tail = np.asarray(list(islice(self._rows, start, None)), dtype=np.float64)
        if count < 2 or self._needs_rebase(tail):
            return self._rebase()
        x, y = self._xy(tail)
        self._tail_overlap = count - self._since_rebase
        # The tail, then the header (its tick timestamp) last: hold_all sends in reverse.
        with hold_all((self.header, self.tail_lines)):
            self.tail_lines.x = x
            self.tail_lines.y = y
            self.header.value = self._header_html()
        self._shown_row(tail[-1])
        return 2, x.nbytes + y.nbytes + len(self.header.value)

    def _xy(self, table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = table[:, 0].astype(np.int64).astype("datetime64[ms]")
        index = {name: i + 1 for i, name in enumerate(self.columns)}
        y = table[:, [index[name] for name in self.series_names]].T.astype(np.float32)
        return x, y

    def _needs_rebase(self, tail: np.ndarray) -> bool:
        if self._x_max_ms is None or self._since_rebase > self._tail_limit:
            return True
        if tail[-1, 0] > self._x_max_ms:
            return True  # past the right edge of the time axis
        if self.y_axis is not None:
            values = tail[:, 1:]
            finite = values[np.isfinite(values)]
            if finite.size and (finite.min() < self.y_axis.lo or finite.max() > self.y_axis.hi):
                return True  # a value outside the y bounds
        return False

    def _rebase(self) -> tuple[int, int]:
        """Redraw the whole window as the history (and its padding row), empty the tail,
        move the x domain and the axes."""
        table = np.asarray(self._rows, dtype=np.float64)
        rows = len(table)
        first, last = float(table[0, 0]), float(table[-1, 0])
        # Room on the right for the next tail: ``_tail_limit`` rows at the window's pace
        # (a quarter of the window while it fills up); one second if time has not moved.
        self._tail_limit = max(1, min(self.tail, rows // 4))
        step = (last - first) / (rows - 1) if rows > 1 else 0.0
        self._x_max_ms = last + (step * self._tail_limit if step > 0 else 1000.0)
        x, y = self._xy(table)
        # The padding row: all NaN (nothing drawn) at the right edge of the x domain.
        pad_x = np.append(x, np.datetime64(int(self._x_max_ms), "ms"))
        pad_y = np.concatenate([y, np.full((y.shape[0], 1), np.nan, np.float32)], axis=1)
        messages = 3 + self._update_axes(table, self._x_max_ms)
        # The history, the (emptied) tail, the header last: hold_all sends in reverse, so
        # the browser never draws a new tail over an old history.
        with hold_all((self.header, self.tail_lines, self.lines)):
            self.lines.x = pad_x
            self.lines.y = pad_y
            self.tail_lines.x = self._empty_x()
            self.tail_lines.y = self._empty_y()
            self.header.value = self._header_html()
        self._since_rebase = 0
        self._tail_overlap = 0
        self.rebases += 1
        self._shown_row(table[-1])
        return messages, pad_x.nbytes + pad_y.nbytes + len(self.header.value)

    def _shown_row(self, last: np.ndarray) -> None:
        self.shown = {"time_ms": float(last[0])}
        self.shown.update(
            (name, None if math.isnan(v) else float(v))
            for name, v in zip(self.columns, last[1:], strict=True)
        )

    def _update_axes(self, table: np.ndarray, x_max_ms: float) -> int:
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
        times = time_axis(float(table[0, 0]), x_max_ms)
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
        return (
            f'<div class="rtstream-chart-header" data-symbol="{esc(self.symbol)}"{tick} '
            'style="color:var(--jp-ui-font-color1, inherit);white-space:nowrap">'
            f"<b>{esc(self.symbol)}</b> {fmt_number(self.last_price)}{change}</div>"
        )

    def _legend_html(self) -> str:
        items = "".join(
            f'<span style="margin-left:0.9em;white-space:nowrap">'
            f'<span style="display:inline-block;width:1.2em;height:0.25em;'
            f'vertical-align:middle;background:{self._colors[name]}"></span> '
            f"{esc(_label(name))}</span>"
            for name in reversed(self.series_names)
            if name != "bb_lower"
        )
        return (
            '<div class="rtstream-legend" style="font-size:0.85em;text-align:right;'
            f'color:var(--jp-ui-font-color2, inherit)">{items}</div>'
        )

    def clear(self) -> None:
        """Forget the window (e.g. after an unrecoverable gap); the next frame redraws."""
        self._rows.clear()
        self._last_tick_ms = None
        self._row_has_indicators = True
        self._since_rebase = 0
        self._tail_overlap = 0
        self._x_max_ms = None

    def close(self) -> None:
        if hasattr(self, "limiter"):
            self.stop()
        for widget in (
            getattr(self, "lines", None),
            getattr(self, "tail_lines", None),
            getattr(self, "fig", None),
            getattr(self, "header", None),
            getattr(self, "legend", None),
            getattr(self, "header_row", None),
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
