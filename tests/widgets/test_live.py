"""A Dashboard on a real stream from a real server: live data, an alert rule created from
the form, persisted history, and close() releasing the dashboard's subscriptions."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator

import pytest

import jupyter_rtstream
from jupyter_rtstream.testing import ServerProcess
from jupyter_rtstream.widgets import Dashboard, RestAPI, RestError

from .._wait import wait_until

SYMBOLS = ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"]


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with ServerProcess(
        config={"RtstreamApp": {"seed": 5, "tick_rate": 10.0, "heartbeat_interval": 1.0}}
    ) as proc:
        yield proc


def test_dashboard_on_a_live_stream(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    async def main() -> dict[str, object]:
        stream = await jupyter_rtstream.connect(server.url, server.token)
        await stream.subscribe("market_data", "AAPL")  # the user's own: must survive close()
        loop = asyncio.get_running_loop()
        started = loop.time()
        dashboard = jupyter_rtstream.Dashboard(SYMBOLS, stream)
        await dashboard.start()
        assert len(stream.subscriptions) == 4 * len(SYMBOLS)
        assert dashboard.badge.state == "connected"
        await asyncio.sleep(3.0)
        for symbol in SYMBOLS:
            chart = dashboard.charts[symbol]
            assert chart.points >= 20, (symbol, chart.points)
            assert chart.shown["price"] is not None and math.isfinite(chart.shown["price"])
            assert chart.shown["sma_20"] is not None and math.isfinite(chart.shown["sma_20"])
            row = dashboard.table.shown[symbol]
            assert all(math.isfinite(row[k]) for k in ("price", "rsi_14", "macd", "vwap"))
        stats = dashboard.stats()
        elapsed = loop.time() - started
        for name, part in dashboard.parts.items():
            assert part.render_stats.flushed <= elapsed * part.fps + 2, name

        # An alert rule from the form, on our own symbol; ticks pushed over REST fire it.
        api = RestAPI.for_stream(stream)
        assert await api.post_ticks([{"symbol": "WIDG", "price": 10.0, "volume": 5}]) == 1
        await dashboard.add_symbol("WIDG")
        assert dashboard.rule_form is not None
        form = dashboard.rule_form
        form.rule_name.value = "<b>breakout</b>"
        form.symbol.value = "widg"
        form.condition.value = "price_above"
        form.target_value.value = 11.0
        form.severity.value = "high"
        rule = await form.submit()
        assert rule is not None and rule["rule_id"] >= 1, form.message.value
        await api.post_ticks([{"symbol": "WIDG", "price": p, "volume": 5} for p in (10.5, 12.0)])
        await wait_until(lambda: bool(dashboard.alerts.items))
        # The feed's and the chart's next frames.
        await wait_until(lambda: "&lt;b&gt;breakout" in dashboard.alerts.value, what="the feed")
        await wait_until(lambda: dashboard.charts["WIDG"].shown["price"] == 12.0, what="chart")
        assert dashboard.alerts.items[0].rule_name == "<b>breakout</b>"
        assert "<b>breakout" not in dashboard.alerts.value
        history = await api.alerts(since=0)
        assert [a.alert_id for a in history] == [dashboard.alerts.items[0].alert_id]
        with pytest.raises(RestError) as refused:
            await api.create_rule(
                rule_name="x",
                symbol="NOPE",
                condition="price_above",
                target_value=1.0,
                severity="low",
            )
        assert refused.value.error_code == "UNKNOWN_INSTRUMENT"

        await dashboard.aclose()
        assert stream.subscriptions == ["market_data:AAPL"]
        await stream.close()
        return stats

    stats = asyncio.run(asyncio.wait_for(main(), 60))
    with capsys.disabled():
        print(
            f"\n[live server, 5 symbols x 10 ticks/s] received={stats['received']} "
            f"flushed={stats['flushed']} coalesced={stats['coalesced']} "
            f"p50={stats['p50_ms']:.2f} ms p99={stats['p99_ms']:.2f} ms "
            f"frame render p99={stats['render_p99_ms']:.2f} ms"
        )


def test_dashboard_connect_owns_its_stream(server: ServerProcess) -> None:
    async def main() -> None:
        dashboard = await Dashboard.connect(["MSFT"], server.url, server.token)
        assert dashboard.stream is not None
        await wait_until(lambda: dashboard.charts["MSFT"].points > 0)
        await dashboard.aclose()
        assert dashboard.stream.closed

    asyncio.run(asyncio.wait_for(main(), 30))
