"""The Dashboard: status badge, one price chart per symbol, indicator table, alert feed and
controls, fed by a :class:`~jupyter_rtstream.client.Stream` (or by ``handle()`` directly).

::

    stream = await jupyter_rtstream.connect()
    dashboard = Dashboard(["AAPL", "MSFT"], stream)   # subscribes in the background
    dashboard                                          # display it
    await dashboard.start()                            # optional: wait for the acks
    dashboard.stats()                                  # p50/p99 ms, received, flushed...
    await dashboard.aclose()                           # stop updating, unsubscribe

Rendering budget: each piece (every chart, the feed, the badge) has its own frame limiter,
``fps`` frames per second at most (default 60, the table too unless ``table_fps`` says
otherwise), each frame one comm message per changed widget (a chart's frame between
rebases: its tail and its header), and every frame paid for from the kernel's one budget
(:class:`~._render.FrameBudget`: iopub's limits and what the browser renders without
falling behind), so a feed of 1,000 messages/s costs the kernel's iopub channel about 150
comm messages per second, not thousands. See :mod:`._render` and :mod:`.chart`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ipywidgets import HTML, Accordion, GridBox, HBox, Layout, VBox

from ..client.rest import RestAPI
from ..core.vocabulary import SUBSCRIPTION_TYPES, SubscriptionType, normalize_symbol, topic_for
from ._base import esc
from ._render import DEFAULT_COALESCE, DEFAULT_FPS, now, summarize
from .alerts import DEFAULT_MAX_ALERTS, AlertFeed
from .chart import DEFAULT_OVERLAYS, DEFAULT_WINDOW, PriceChart
from .controls import AlertRuleForm, SymbolControls
from .status import StatusBadge
from .table import IndicatorTable

if TYPE_CHECKING:
    from ..client import Stream

log = logging.getLogger("jupyter_rtstream.widgets")

#: What the dashboard subscribes to for each symbol.
DEFAULT_KINDS: tuple[SubscriptionType, ...] = SUBSCRIPTION_TYPES
#: Stream events the dashboard listens to.
_EVENTS = (
    "market_data",
    "technical_indicators",
    "analytics_update",
    "alert",
    "gap",
)


class Dashboard(VBox):  # type: ignore[misc]
    """Live dashboard of ``symbols``.

    Parts, each usable alone: ``badge`` (:class:`StatusBadge`), ``charts[symbol]``
    (:class:`PriceChart`), ``table`` (:class:`IndicatorTable`), ``alerts``
    (:class:`AlertFeed`), ``symbol_controls`` and ``rule_form`` (controls).

    With a ``stream``, the dashboard registers its callbacks at once and, when an event
    loop is running (a notebook), subscribes to ``kinds`` of every symbol in the background
    (``await dashboard.start()`` waits for it and raises the first refusal). Topics the
    stream was already subscribed to are left alone by :meth:`close`; the dashboard's own
    are unsubscribed. Without a stream, feed it with :meth:`handle`.
    """

    def __init__(
        self,
        symbols: Iterable[str] = (),
        stream: Stream | None = None,
        *,
        fps: float = DEFAULT_FPS,
        table_fps: float | None = None,
        coalesce: float = DEFAULT_COALESCE,
        window: int = DEFAULT_WINDOW,
        overlays: Sequence[str] = DEFAULT_OVERLAYS,
        bands: bool = True,
        max_alerts: int = DEFAULT_MAX_ALERTS,
        kinds: Sequence[str] = DEFAULT_KINDS,
        controls: bool = True,
        autostart: bool = True,
        chart_height: str = "240px",
        **kwargs: Any,
    ) -> None:
        self.stream: Stream | None = None
        self.rest: RestAPI | None = None
        self.fps = fps
        # The table is one HTML message per frame (the whole table): the charts' rate, not
        # more; a lower one would hold its messages back (``stats()`` counts them too).
        self.table_fps = fps if table_fps is None else table_fps
        self.coalesce = coalesce
        self.window = window
        self.overlays = tuple(overlays)
        self.bands = bands
        self.kinds = tuple(kinds)
        self.chart_height = chart_height
        self.symbols: list[str] = []
        self.charts: dict[str, PriceChart] = {}
        self.errors: list[str] = []
        self.received = 0
        self.gaps = 0
        self.closed = False
        self._owned: set[str] = set()
        self._unhooks: list[Callable[[], None]] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._start_task: asyncio.Task[list[BaseException]] | None = None
        self._release_task: asyncio.Task[None] | None = None
        self._own_stream = False

        self.badge = StatusBadge(fps=fps, coalesce=coalesce)
        self.table = IndicatorTable(only_symbols=True, fps=self.table_fps, coalesce=coalesce)
        self.alerts = AlertFeed(max_items=max_alerts, fps=fps, coalesce=coalesce)
        self.title = HTML('<b style="font-size:1.1em">jupyter-rtstream</b>')
        self.banner = HTML()
        self.chart_grid = GridBox(
            layout=Layout(grid_template_columns="repeat(auto-fill, minmax(420px, 1fr))")
        )
        self.symbol_controls: SymbolControls | None = None
        self.rule_form: AlertRuleForm | None = None
        children: list[Any] = [
            HBox([self.title, self.badge], layout=Layout(align_items="center")),
            self.banner,
            self.chart_grid,
            self.table,
            HTML("<b>Alerts</b>"),
            self.alerts,
        ]
        if controls:
            self.symbol_controls = SymbolControls(self.add_symbol, self.remove_symbol)
            self.rule_form = AlertRuleForm(None, on_created=self._rule_created)
            accordion = Accordion(children=[self.symbol_controls, self.rule_form])
            accordion.set_title(0, "Symbols")
            accordion.set_title(1, "New alert rule")
            accordion.selected_index = None
            children.append(accordion)
        super().__init__(children=children, **kwargs)
        for symbol in symbols:
            self._add_symbol_widgets(symbol)
        if stream is not None:
            self.attach(stream, autostart=autostart)

    # ------------------------------------------------------------------ construction

    @classmethod
    async def connect(
        cls,
        symbols: Iterable[str] = (),
        url: str | None = None,
        token: str | None = None,
        **kwargs: Any,
    ) -> Dashboard:
        """Connect a new stream (closed with the dashboard), subscribe, return the dashboard."""
        from ..client import connect

        stream = await connect(url, token)
        dashboard = cls(symbols, stream, **kwargs)
        dashboard._own_stream = True
        try:
            await dashboard.start()
        except BaseException:
            await dashboard.aclose()
            raise
        return dashboard

    def attach(self, stream: Stream, *, autostart: bool = True) -> None:
        """Follow ``stream``: register callbacks; subscribe when a loop is running."""
        if self.stream is not None:
            raise RuntimeError("this dashboard already follows a stream")
        self.stream = stream
        self.rest = RestAPI.for_stream(stream)
        if self.rule_form is not None:
            self.rule_form.rest = self.rest
            self.rule_form.create_button.disabled = False
        for event in _EVENTS:
            self._unhooks.append(stream.on(event, self.handle))
        self.badge.bind(stream)
        if autostart:
            with contextlib.suppress(RuntimeError):  # no running loop: call start() later
                asyncio.get_running_loop()
                self._ensure_started()

    def _ensure_started(self) -> asyncio.Task[list[BaseException]]:
        if self._start_task is None:
            loop = asyncio.get_running_loop()
            self._start_task = loop.create_task(self._subscribe_all(list(self.symbols)))
        return self._start_task

    async def start(self) -> None:
        """Subscribe to every symbol (once); raise the first refusal, if any."""
        if self.stream is None:
            raise RuntimeError("no stream: pass one to Dashboard(...) or call attach()")
        errors = await asyncio.shield(self._ensure_started())
        if errors:
            raise errors[0]

    async def _subscribe_all(self, symbols: list[str]) -> list[BaseException]:
        results = await asyncio.gather(
            *(self._subscribe(symbol) for symbol in symbols), return_exceptions=True
        )
        return [r for r in results if isinstance(r, BaseException)]

    async def _subscribe(self, symbol: str) -> None:
        stream = self.stream
        if stream is None:
            return
        try:
            for kind in self.kinds:
                topic = topic_for(kind, symbol)
                if topic in stream.subscriptions and topic not in self._owned:
                    continue  # the user's own subscription: use it, never release it
                self._owned.add(topic)
                await stream.subscribe(kind, symbol)
        except Exception as exc:
            self._error(f"{symbol}: {exc}")
            raise

    # ------------------------------------------------------------------ symbols

    def _add_symbol_widgets(self, symbol: str) -> str:
        key = normalize_symbol(symbol)
        if key not in self.charts:
            chart = PriceChart(
                key,
                window=self.window,
                overlays=self.overlays,
                bands=self.bands,
                fps=self.fps,
                coalesce=self.coalesce,
                height=self.chart_height,
            )
            self.charts[key] = chart
            self.symbols.append(key)
            self.chart_grid.children = (*self.chart_grid.children, chart)
            self.table.add_symbol(key)
        return key

    async def add_symbol(self, symbol: str) -> None:
        """Show ``symbol`` and subscribe to it (the Subscribe button does this)."""
        if self.closed:
            raise RuntimeError("the dashboard is closed")
        key = self._add_symbol_widgets(symbol)
        if self.stream is not None:
            try:
                await self._subscribe(key)
            except BaseException:
                await self.remove_symbol(key)
                raise

    async def remove_symbol(self, symbol: str) -> None:
        """Stop showing ``symbol`` and release the dashboard's subscriptions to it."""
        key = normalize_symbol(symbol)
        chart = self.charts.pop(key, None)
        if key in self.symbols:
            self.symbols.remove(key)
        if chart is not None:
            self.chart_grid.children = tuple(c for c in self.chart_grid.children if c is not chart)
            chart.close()
        self.table.remove_symbol(key)
        await self._release([topic_for(kind, key) for kind in self.kinds])

    async def _release(self, topics: Iterable[str]) -> None:
        stream = self.stream
        for topic in topics:
            if topic not in self._owned:
                continue
            self._owned.discard(topic)
            if stream is None or stream.closed:
                continue
            kind, _, symbol = topic.partition(":")
            try:
                await stream.unsubscribe(kind, symbol)
            except Exception as exc:  # the stream may be reconnecting or closing
                log.debug("rtstream widgets: unsubscribe %s failed: %s", topic, exc)

    # ------------------------------------------------------------------ messages

    def handle(self, message: Any) -> bool:
        """Dispatch one message (or client event) to the widgets that show it."""
        if self.closed:
            return False
        at = now()
        kind = getattr(message, "message_type", None)
        handled = False
        if kind in ("market_data", "technical_indicators", "analytics_update"):
            symbol = normalize_symbol(str(message.data.symbol))
            if symbol not in self.charts:
                return False
            if kind != "analytics_update":
                handled = self.charts[symbol].handle(message, at)
            handled = self.table.handle(message, at) or handled
        elif kind == "alert":
            handled = self.alerts.handle(message, at)
        elif kind in ("state", "connection_status"):
            handled = self.badge.handle(message, at)
        elif kind == "gap":
            self.gaps += 1
            self._gap(message)
            handled = True
        if handled:
            self.received += 1
        return handled

    def _gap(self, gap: Any) -> None:
        # Market data could not be recovered: the chart restarts from the fresh snapshot.
        kind, _, symbol = str(getattr(gap, "topic", "")).partition(":")
        if kind == "market_data" and symbol in self.charts:
            self.charts[symbol].clear()

    def _error(self, text: str) -> None:
        self.errors.append(text)
        self.banner.value = "".join(
            f'<div style="color:#c53030">{esc(line)}</div>' for line in self.errors[-3:]
        )

    def _rule_created(self, rule: dict[str, Any]) -> None:
        symbol = normalize_symbol(str(rule.get("symbol", "")))
        if symbol and symbol not in self.charts and self.stream is not None:
            # Show the alerts of a rule on a symbol the dashboard does not follow yet.
            self._spawn(self._subscribe_alerts(symbol))

    async def _subscribe_alerts(self, symbol: str) -> None:
        topic = topic_for("alerts", symbol)
        if self.stream is None or topic in self.stream.subscriptions:
            return
        self._owned.add(topic)
        try:
            await self.stream.subscribe("alerts", symbol)
        except Exception as exc:
            self._error(f"alerts of {symbol}: {exc}")

    def _spawn(self, coro: Any) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ frames and stats

    @property
    def parts(self) -> dict[str, Any]:
        """Every live widget by name (``chart:AAPL``, ``table``, ``alerts``, ``badge``)."""
        named: dict[str, Any] = {f"chart:{s}": c for s, c in self.charts.items()}
        named.update(table=self.table, alerts=self.alerts, badge=self.badge)
        return named

    def flush(self) -> int:
        """Send every pending update now (normally the frame limiters do it)."""
        return sum(bool(part.flush()) for part in self.parts.values())

    def stats(self) -> dict[str, Any]:
        """Render statistics: ``received`` (messages the dashboard took), ``flushed``
        (frames sent, all widgets), ``coalesced``, ``dropped``, ``p50_ms`` / ``p99_ms`` /
        ``max_ms`` of the time from a message's arrival in the kernel to the end of the frame
        that sent its update (one sample per message and widget), ``render_p99_ms`` (time
        to build and send one frame); ``widgets`` has the same per widget."""
        parts = self.parts
        merged = summarize(part.render_stats for part in parts.values())
        merged["deliveries"] = merged.pop("received")
        return {
            "received": self.received,
            **merged,
            "fps": self.fps,
            "widgets": {name: part.stats() for name, part in parts.items()},
        }

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Stop updating now, release subscriptions (in the background) and close widgets."""
        if self.closed:
            return
        self.closed = True
        for unhook in self._unhooks:
            unhook()
        self._unhooks.clear()
        if self._start_task is not None and not self._start_task.done():
            self._start_task.cancel()
        for part in list(self.parts.values()):
            part.stop()
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            self._release_task = loop.create_task(self._release_all())
        self._close_widgets()
        super().close()

    async def aclose(self) -> None:
        """:meth:`close`, then wait until the subscriptions are released."""
        self.close()
        if self._release_task is not None:
            await self._release_task

    async def _release_all(self) -> None:
        await self._release(sorted(self._owned))
        if self._own_stream and self.stream is not None:
            await self.stream.close()

    def _close_widgets(self) -> None:
        for chart in self.charts.values():
            chart.close()
        self.badge.close()
        self.table.close()
        self.alerts.close()
        for widget in (self.symbol_controls, self.rule_form):
            if widget is not None:
                _close_tree(widget)
        for child in self.children:
            _close_tree(child)

    def __repr__(self) -> str:
        state = "closed" if self.closed else (self.stream.state.value if self.stream else "offline")
        return f"<Dashboard {self.symbols} {state}>"


def _close_tree(widget: Any) -> None:
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    with contextlib.suppress(Exception):
        widget.close()
