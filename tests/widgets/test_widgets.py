"""Each widget on its own, fed hand-built messages; escaping; close(); the Dashboard's
subscriptions with a fake stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from jupyter_rtstream.client import ConnectionState, StateChange
from jupyter_rtstream.core.messages import ConnectionStatus, ConnectionStatusPayload
from jupyter_rtstream.widgets import (
    AlertFeed,
    AlertRuleForm,
    Dashboard,
    IndicatorTable,
    PriceChart,
    StatusBadge,
    SymbolControls,
)

from .._wait import wait_until
from ._messages import T0, XSS, alert, analytics, indicator_values, indicators, market_data
from .conftest import CommLog

RAW_TAG = re.compile(r"<\s*img", re.IGNORECASE)


def html_values(widget: Any) -> list[str]:
    """Every HTML string of a widget tree."""
    out = []
    value = getattr(widget, "value", None)
    if isinstance(value, str):
        out.append(value)
    for child in getattr(widget, "children", ()):
        out.extend(html_values(child))
    return out


# --------------------------------------------------------------------------- chart


def ms(seq: int) -> np.datetime64:
    return np.datetime64(int(market_data("AAPL", seq).data.timestamp.timestamp() * 1000), "ms")


def test_chart_window_is_bounded_and_shows_the_last_values(comms: CommLog) -> None:
    chart = PriceChart("AAPL")  # default window: 500 points
    for seq in range(1, 1201):
        chart.handle(market_data("AAPL", seq))
        chart.handle(indicators("AAPL", seq))
    chart.handle(market_data("MSFT", 5000))  # another symbol: ignored
    assert chart.points == 500
    before = comms.updates
    assert chart.flush()
    # The first frame draws the history: history, tail and header, and the axes (their
    # first ticks: x axis, y axis, y scale, figure margin).
    assert chart.rebases == 1
    assert comms.updates - before <= chart.frame_cost + 4
    f32 = np.float32
    assert chart.series_names == ("bb_upper", "bb_lower", "sma_20", "ema_12", "price")
    # The history: the window and one padding row (NaN, at the x domain's right edge).
    assert chart.lines.y.shape == (len(chart.series_names), 501) and len(chart.lines.x) == 501
    assert np.isnan(chart.lines.y[:, -1]).all() and chart.lines.x[-1] > ms(1200)
    assert chart.lines.x.dtype.kind == "M" and chart.lines.y.dtype == np.float32
    assert len(chart.times()) == 500
    last = market_data("AAPL", 1200).data
    values = indicator_values("AAPL", 1200)
    assert chart.series("price")[-1] == f32(last.price)
    assert chart.times()[-1] == ms(1200)
    for name in ("bb_upper", "bb_lower", "sma_20", "ema_12"):
        assert chart.series(name)[-1] == f32(values[name]), name
    assert chart.shown["price"] == last.price and chart.shown["sma_20"] == values["sma_20"]
    assert f'data-tick-ms="{int(last.timestamp.timestamp() * 1000)}"' in chart.header.value
    # The first row of the window is tick 701: the oldest ticks were dropped unseen.
    assert chart.series("price")[0] == f32(market_data("AAPL", 701).data.price)
    stats = chart.stats()
    assert stats["received"] == 2400 and stats["flushed"] == 1
    assert stats["coalesced"] == 2399 and stats["dropped"] == 700
    assert not chart.flush()  # nothing new: no frame
    # The next tick: the tail and the header only.
    before = comms.updates
    chart.handle(market_data("AAPL", 1201))
    assert chart.flush()
    assert comms.updates - before == 2 and chart.rebases == 1
    assert chart.times()[-1] == ms(1201)


def test_chart_sends_only_the_tail_between_rebases(comms: CommLog) -> None:
    """Between rebases a frame updates the tail mark and the header, nothing else (the
    history, the scales and the axes keep their state); the tail starts at the history's
    last row; a rebase comes when the tail is full, when a tick passes the right edge of the
    time axis or when a value leaves the y bounds."""
    chart = PriceChart("AAPL", window=40, tail=5)
    for seq in range(1, 41):
        chart.handle(market_data("AAPL", seq))
        chart.handle(indicators("AAPL", seq))
    chart.flush()
    assert chart.rebases == 1 and len(chart.tail_lines.x) == 0
    history_x, history_y = chart.lines.x, chart.lines.y
    tail_and_header = {chart.tail_lines.comm.comm_id, chart.header.comm.comm_id}
    for seq in range(41, 46):
        comms.updates_by_comm.clear()
        chart.handle(market_data("AAPL", seq))
        chart.handle(indicators("AAPL", seq))
        assert chart.flush()
        assert set(comms.updates_by_comm) == tail_and_header
        assert all(n == 1 for n in comms.updates_by_comm.values())
        assert chart.lines.x is history_x and chart.lines.y is history_y
        # The tail: the history's last row (so the lines join), then the new rows.
        assert len(chart.tail_lines.x) == seq - 40 + 1
        assert chart.tail_lines.x[0] == ms(40) and chart.tail_lines.x[-1] == ms(seq)
        assert chart.series("sma_20")[-1] == np.float32(indicator_values("AAPL", seq)["sma_20"])
        times = chart.times()
        assert (np.diff(times.astype(np.int64)) > 0).all() and times[-1] == ms(seq)
    # A sixth row would overflow the tail: the chart rebases.
    chart.handle(market_data("AAPL", 46))
    chart.flush()
    assert chart.rebases == 2 and chart.points == 40
    assert chart.lines.x[-2] == ms(46) and len(chart.tail_lines.x) == 0
    assert chart.times()[0] == ms(7) and chart.times()[-1] == ms(46)
    # A price far above the y bounds: rebased at once, the bounds take it.
    chart.handle(market_data("AAPL", 47, price=1_000.0))
    chart.flush()
    assert chart.rebases == 3 and chart.y_axis is not None and chart.y_axis.hi >= 1_000.0
    # A tick past the right edge of the time axis (a minute later): rebased at once.
    late = market_data("AAPL", 48)
    late.data.timestamp = late.data.timestamp.replace(minute=late.data.timestamp.minute + 1)
    chart.handle(late)
    chart.flush()
    assert chart.rebases == 4 and chart.lines.x[-1] > chart.lines.x[-2] >= ms(48)
    # After clear() (an unrecoverable gap) the next frame rebases.
    chart.clear()
    chart.handle(market_data("AAPL", 100))
    chart.flush()
    assert chart.rebases == 5 and chart.times().tolist() == [ms(100)]


def test_chart_indicators_join_the_row_of_their_tick() -> None:
    chart = PriceChart("AAPL", overlays=("sma_20",), window=10)
    chart.handle(market_data("AAPL", 1))
    chart.handle(indicators("AAPL", 1))
    chart.handle(indicators("AAPL", 2))  # no price for this one: its own row, price NaN
    chart.flush()
    assert chart.points == 2
    assert chart.lines.y.shape == (4, 3)  # bands, sma_20, price; two rows and the padding
    assert np.isnan(chart.series("price")[1])
    # The indicator-only row is drawn at the time of the last tick.
    assert chart.times()[0] == chart.times()[1]
    warmup = indicators("AAPL", 3)
    warmup.data.indicators["sma_20"] = None
    chart.handle(market_data("AAPL", 3))
    chart.handle(warmup)
    chart.flush()
    assert np.isnan(chart.series("sma_20")[-1]) and chart.shown["sma_20"] is None


# --------------------------------------------------------------------------- table


def test_table_shows_the_latest_values_per_symbol() -> None:
    table = IndicatorTable(["MSFT", "AAPL"])
    for seq in range(1, 51):
        for symbol in ("AAPL", "MSFT"):
            table.handle(market_data(symbol, seq))
            table.handle(indicators(symbol, seq))
    table.handle(analytics("AAPL", 1, trend="bearish"))
    assert table.flush()
    assert table.symbols == ["MSFT", "AAPL"]
    for symbol in ("AAPL", "MSFT"):
        shown = table.shown[symbol]
        assert shown["price"] == market_data(symbol, 50).data.price
        for key in ("rsi_14", "macd", "vwap", "volatility_20"):
            assert shown[key] == indicator_values(symbol, 50)[key]
    assert table.shown["AAPL"]["trend"] == "bearish"
    assert "bearish" in table.value and table.value.index("MSFT") < table.value.index("AAPL")
    assert table.stats()["flushed"] == 1
    only = IndicatorTable(["AAPL"], only_symbols=True)
    assert not only.handle(market_data("MSFT", 1))


# --------------------------------------------------------------------------- alerts


def test_alert_feed_is_newest_first_bounded_and_deduplicated() -> None:
    feed = AlertFeed(max_items=5)
    for alert_id in (1, 2, 3):
        feed.handle(alert(alert_id, severity=("low", "medium", "high")[alert_id - 1]))
    assert not feed.handle(alert(2))  # duplicate
    feed.flush()
    assert [a.alert_id for a in feed.items] == [3, 2, 1]
    assert feed.value.index("HIGH") < feed.value.index("MEDIUM") < feed.value.index("LOW")
    for color in ("#c53030", "#dd6b20", "#3182ce"):
        assert color in feed.value
    # History read later merges in order; the feed keeps the newest max_items.
    assert feed.extend([alert(i).data for i in range(4, 10)]) == 6
    feed.flush()
    assert [a.alert_id for a in feed.items] == [9, 8, 7, 6, 5]
    assert not feed.handle(alert(1))  # older than everything kept


# --------------------------------------------------------------------------- status


def test_status_badge_words_colours_and_errors() -> None:
    badge = StatusBadge()
    assert "disconnected" in badge.value
    retry = T0
    badge.handle(
        StateChange(
            ConnectionState.RECONNECTING,
            ConnectionState.CONNECTED,
            attempts=3,
            last_error=ConnectionError(f"closed: {XSS}"),
            next_retry_at=retry,
            status_text="server busy (close 1013), retrying in 12 s",
        )
    )
    badge.flush()
    assert "reconnecting" in badge.value and "#c05621" in badge.value
    assert "server busy (close 1013), retrying in 12 s" in badge.value
    assert "attempt 3" in badge.value and "next retry at 14:30:00Z" in badge.value
    assert not RAW_TAG.search(badge.value) and "&lt;img" in badge.value
    badge.handle(
        ConnectionStatus(
            data=ConnectionStatusPayload(
                client_id="c1",
                connected_at=T0,
                subscriptions=[],
                last_heartbeat=T0,
                epoch="e1",
                conflated=12,
            )
        )
    )
    badge.handle(
        StateChange(ConnectionState.CONNECTED, ConnectionState.RECONNECTING, 0, None, None)
    )
    badge.flush()
    assert "connected" in badge.value and "#2f855a" in badge.value
    assert "last error" not in badge.value and "12 conflated" in badge.value
    assert list(badge.history) == ["disconnected", "reconnecting", "connected"]
    assert "retrying" not in badge.value
    badge.handle(
        StateChange(
            ConnectionState.DISCONNECTED,
            ConnectionState.RECONNECTING,
            1,
            None,
            None,
            status_text=f"refused: 403 {XSS}",
        )
    )
    badge.flush()
    assert "refused: 403" in badge.value and not RAW_TAG.search(badge.value)


# --------------------------------------------------------------------------- escaping


def test_every_wire_string_is_escaped(comms: CommLog) -> None:
    dashboard = Dashboard([XSS, "AAPL"])
    symbol = XSS.upper()
    for seq in range(1, 30):
        dashboard.handle(market_data(symbol, seq, price=10.0 + seq))
        dashboard.handle(indicators(symbol, seq))
    dashboard.handle(analytics(symbol, 1))
    dashboard.handle(alert(7, symbol, rule_name=XSS, message=f"crossed {XSS} & <b>bold</b>"))
    dashboard.flush()
    texts = html_values(dashboard)
    assert any("&lt;IMG SRC=X ONERROR=ALERT(1)&gt;" in text for text in texts)  # chart, table
    assert any("&lt;img src=x onerror=alert(1)&gt;" in text for text in texts)  # rule name
    assert any("&amp; &lt;b&gt;bold&lt;/b&gt;" in text for text in texts)
    for text in texts:
        assert not RAW_TAG.search(text), text
        assert "<b>bold" not in text


def test_control_errors_are_escaped() -> None:
    async def refuse(symbol: str) -> None:
        raise ValueError(f"unknown instrument {XSS}")

    async def main() -> tuple[bool, str, dict[str, Any] | None, str]:
        controls = SymbolControls(refuse, refuse)
        ok = await controls.subscribe("zzz")
        form = AlertRuleForm(None)
        rule = await form.submit()
        return ok, controls.message.value, rule, form.message.value

    ok, text, rule, form_text = asyncio.run(main())
    assert not ok and "&lt;img" in text and not RAW_TAG.search(text)
    assert rule is None and "not connected" in form_text


def test_rule_form_body() -> None:
    form = AlertRuleForm(None, symbol="aapl")
    form.rule_name.value = "rsi hot"
    form.condition.value = "indicator_above"
    form.indicator.value = "rsi_14"
    form.target_value.value = 70
    form.severity.value = "high"
    assert form.body() == {
        "rule_name": "rsi hot",
        "symbol": "AAPL",
        "condition": "indicator_above",
        "target_value": 70.0,
        "severity": "high",
        "indicator": "rsi_14",
    }
    form.condition.value = "price_below"
    assert "indicator" not in form.body()


# --------------------------------------------------------------------------- close


def test_close_stops_updates(comms: CommLog) -> None:
    async def main() -> None:
        dashboard = Dashboard(["AAPL"], fps=50)
        dashboard.handle(market_data("AAPL", 1))
        await wait_until(lambda: dashboard.stats()["flushed"] >= 2, what="chart and table")
        dashboard.handle(market_data("AAPL", 2))  # pending when closed: never sent
        dashboard.close()
        updates, flushed = comms.updates, dashboard.stats()["flushed"]
        for seq in range(3, 100):
            assert not dashboard.handle(market_data("AAPL", seq))
            assert not dashboard.charts["AAPL"].handle(market_data("AAPL", seq))
        await asyncio.sleep(0.1)
        assert dashboard.flush() == 0
        assert comms.updates == updates and dashboard.stats()["flushed"] == flushed
        assert comms.messages["comm_close"] > 10  # the widgets' comms are closed

    asyncio.run(main())


class FakeStream:
    """Just what the Dashboard uses of a Stream."""

    def __init__(self, subscriptions: list[str] = ()) -> None:  # type: ignore[assignment]
        self.handlers: dict[str, list[Callable[[Any], Any]]] = {}
        self.topics = set(subscriptions)
        self.requests: list[tuple[str, str, str]] = []
        self.state = ConnectionState.CONNECTED
        self.attempts = 0
        self.next_retry_at = None
        self.last_error = None
        self.closed = False
        self.server = SimpleNamespace(url="http://127.0.0.1:1/", headers=dict)
        self.options = SimpleNamespace(validate_cert=True)

    @property
    def subscriptions(self) -> list[str]:
        return sorted(self.topics)

    def on(self, event: str, callback: Callable[[Any], Any]) -> Callable[[], None]:
        self.handlers.setdefault(event, []).append(callback)
        return lambda: self.handlers[event].remove(callback)

    def emit(self, event: str, item: Any) -> None:
        for callback in list(self.handlers.get(event, ())):
            callback(item)

    async def subscribe(self, kind: str, symbol: str) -> None:
        if symbol == "NOPE":
            raise ValueError("UNKNOWN_INSTRUMENT: NOPE")
        self.requests.append(("subscribe", kind, symbol))
        self.topics.add(f"{kind}:{symbol}")

    async def unsubscribe(self, kind: str, symbol: str) -> None:
        self.requests.append(("unsubscribe", kind, symbol))
        self.topics.discard(f"{kind}:{symbol}")


def test_dashboard_subscribes_and_releases_only_its_own_topics() -> None:
    async def main() -> None:
        stream = FakeStream(["market_data:AAPL"])  # the user's own subscription
        dashboard = Dashboard(["AAPL", "MSFT"], stream)  # type: ignore[arg-type]
        await dashboard.start()
        assert len(stream.topics) == 8
        assert ("subscribe", "market_data", "AAPL") not in stream.requests
        stream.emit("market_data", market_data("AAPL", 1))
        stream.emit("market_data", market_data("GOOG", 1))  # not on the dashboard
        stream.emit("state", StateChange(ConnectionState.RECONNECTING, stream.state, 1, None, None))
        await wait_until(lambda: dashboard.badge.state == "reconnecting", what="the badge")
        assert dashboard.charts["AAPL"].points == 1 and dashboard.received == 1
        with pytest.raises(ValueError, match="UNKNOWN_INSTRUMENT"):
            await dashboard.add_symbol("nope")
        assert "NOPE" not in dashboard.charts
        await dashboard.remove_symbol("MSFT")
        assert not any(t.endswith(":MSFT") for t in stream.topics)
        await dashboard.aclose()
        assert stream.subscriptions == ["market_data:AAPL"]  # the user's, kept
        assert all(not handlers for handlers in stream.handlers.values())
        stream.emit("market_data", market_data("AAPL", 2))
        assert dashboard.charts["AAPL"].points == 1

    asyncio.run(main())


def test_start_reports_refusals() -> None:
    async def main() -> None:
        dashboard = Dashboard(["AAPL", "NOPE"], FakeStream())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="UNKNOWN_INSTRUMENT"):
            await dashboard.start()
        assert dashboard.errors == ["NOPE: UNKNOWN_INSTRUMENT: NOPE"]
        assert "UNKNOWN_INSTRUMENT" in dashboard.banner.value
        await dashboard.aclose()

    asyncio.run(main())
