"""The rendering budget under load: 1,000 messages/s into a Dashboard of 5 symbols.

Real ipywidgets/bqplot objects, no kernel: comm messages are counted (see conftest), so
the iopub traffic the widgets would cause is measured exactly. Timing is reported, not
asserted (shared CI machines); counts and values are asserted.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from jupyter_rtstream.widgets import Dashboard, PriceChart, _render

from ._messages import SYMBOLS, alert, analytics, indicators, market_data
from .conftest import CommLog

RATE = 1000.0  # messages per second
DURATION = 3.0  # seconds of feed
FPS = 10.0
WINDOW = 200  # < ticks per symbol fed, so the window must roll
BURST = 1  # frames a widget may send back to back (FrameLimiter's token bucket)


def load_messages(count: int) -> list[Any]:
    """Rounds of (market_data, technical_indicators) per symbol, an alert every 10 rounds
    and analytics every 100 rounds: at least ``count`` messages, whole rounds only."""
    messages: list[Any] = []
    seq = alert_id = 0
    while len(messages) < count:
        seq += 1
        for symbol in SYMBOLS:
            messages += [market_data(symbol, seq), indicators(symbol, seq)]
        if seq % 10 == 0:
            alert_id += 1
            messages.append(alert(alert_id, SYMBOLS[alert_id % len(SYMBOLS)]))
        if seq % 100 == 0:
            messages += [analytics(symbol, seq // 100) for symbol in SYMBOLS]
    return messages


async def feed(dashboard: Dashboard, messages: list[Any], rate: float) -> float:
    """Hand ``messages`` to the dashboard at ``rate`` per second; returns the elapsed time."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while sent < len(messages):
        due = min(len(messages), int((loop.time() - start) * rate) + 1)
        while sent < due:
            dashboard.handle(messages[sent])
            sent += 1
        await asyncio.sleep(0.001)
    return loop.time() - start


def frames_allowed(seconds: float, fps: float = FPS) -> int:
    """The limiter's guarantee: at most ``burst + seconds * fps`` frames."""
    return int(seconds * fps + BURST)


def report(title: str, stats: dict[str, Any], extra: str = "") -> str:
    return (
        f"\n[{title}] received={stats['received']} deliveries={stats['deliveries']} "
        f"flushed={stats['flushed']} coalesced={stats['coalesced']} dropped={stats['dropped']} "
        f"p50={stats['p50_ms']:.2f} ms p99={stats['p99_ms']:.2f} ms max={stats['max_ms']:.2f} ms "
        f"frame render p99={stats['render_p99_ms']:.2f} ms"
        f"{extra}"
    )


def test_1000_messages_per_second(comms: CommLog, capsys: pytest.CaptureFixture[str]) -> None:
    messages = load_messages(int(RATE * DURATION))

    async def main() -> tuple[Dashboard, float, float, int, int]:
        dashboard = Dashboard(SYMBOLS, fps=FPS, window=WINDOW)
        updates0, bytes0 = comms.updates, comms.bytes
        started = time.perf_counter()
        elapsed = await feed(dashboard, messages, RATE)
        await asyncio.sleep(0.25)  # the trailing frames
        total = time.perf_counter() - started
        return dashboard, elapsed, total, comms.updates - updates0, comms.bytes - bytes0

    dashboard, elapsed, total, updates, sent_bytes = asyncio.run(main())
    stats = dashboard.stats()
    assert stats["received"] == len(messages)
    assert stats["pending"] == 0

    # Frame budget: every widget stays within fps * time (+ first and trailing frame).
    for name, part in dashboard.parts.items():
        if name == "badge":
            continue
        fps = part.fps  # the table has its own (lower) rate
        assert part.render_stats.flushed <= frames_allowed(total, fps), (name, part.stats())
        assert part.render_stats.flushed >= elapsed * fps * 0.5, (name, part.stats())
    # iopub: one comm message per changed widget per frame, nothing per message.
    chart_frames = sum(c.render_stats.flushed for c in dashboard.charts.values())
    other_frames = dashboard.table.render_stats.flushed + dashboard.alerts.render_stats.flushed
    assert updates <= PriceChart.frame_cost * chart_frames + other_frames
    updates_per_second = updates / total
    # 5 charts x (tail, header; history and axes at a rebase) + alert feed and table.
    assert updates_per_second <= (len(SYMBOLS) * PriceChart.frame_cost + 1 + 2) * FPS * 1.1
    assert updates_per_second < 0.3 * RATE  # far below jupyter_server's 1,000 msg/s

    # Bounded windows, and the last values shown are the last messages.
    for symbol, chart in dashboard.charts.items():
        last_md = next(
            m
            for m in reversed(messages)
            if m.message_type == "market_data" and m.data.symbol == symbol
        )
        last_ti = next(
            m
            for m in reversed(messages)
            if m.message_type == "technical_indicators" and m.data.symbol == symbol
        )
        assert chart.points == WINDOW
        # Drawn: the history (the window at the last rebase) and the tail since then.
        assert WINDOW <= len(chart.times()) <= WINDOW + chart.tail
        assert len(chart.series("price")) == len(chart.times())
        assert chart.series("price")[-1] == np.float32(last_md.data.price)
        stamp = np.datetime64(int(last_md.data.timestamp.timestamp() * 1000), "ms")
        assert chart.times()[-1] == stamp
        assert chart.series("sma_20")[-1] == np.float32(last_ti.data.indicators["sma_20"])
        assert chart.series("bb_upper")[-1] == np.float32(last_ti.data.indicators["bb_upper"])
        shown = dashboard.table.shown[symbol]
        assert shown["price"] == last_md.data.price
        for key in ("rsi_14", "macd", "vwap", "volatility_20"):
            assert shown[key] == last_ti.data.indicators[key]
        assert chart.render_stats.dropped == 0  # ~10 ticks per frame: all drawn
    last_alert = next(m for m in reversed(messages) if m.message_type == "alert")
    assert dashboard.alerts.items[0].alert_id == last_alert.data.alert_id

    # close(): no more frames, no more comm updates.
    async def after_close() -> int:
        dashboard.close()
        before = comms.updates
        await feed(dashboard, load_messages(200), RATE)
        await asyncio.sleep(0.2)
        return comms.updates - before

    flushed = dashboard.stats()["flushed"]
    assert asyncio.run(after_close()) == 0
    assert dashboard.stats()["flushed"] == flushed

    with capsys.disabled():
        print(
            report(
                f"1000 msg/s x {elapsed:.1f} s, 5 charts, fps={FPS:g}",
                stats,
                f"\n  comm updates {updates} ({updates_per_second:.0f}/s), "
                f"{sent_bytes / total / 1e3:.0f} kB/s; frames per chart "
                f"{[c.render_stats.flushed for c in dashboard.charts.values()]} "
                f"(budget {frames_allowed(total)})",
            )
        )


def test_default_feed_rate_latency(comms: CommLog, capsys: pytest.CaptureFixture[str]) -> None:
    """5 symbols at the simulated feed's default 10 ticks/s: every tick gets its own frame."""

    async def main() -> tuple[Dashboard, int]:
        dashboard = Dashboard(SYMBOLS, fps=FPS)
        loop = asyncio.get_running_loop()
        start = loop.time()
        ticks = 20
        for seq in range(1, ticks + 1):
            # All symbols tick at once, as the simulated feed does.
            for symbol in SYMBOLS:
                dashboard.handle(market_data(symbol, seq))
                dashboard.handle(indicators(symbol, seq))
            if seq % 10 == 0:
                for symbol in SYMBOLS:
                    dashboard.handle(analytics(symbol, seq))
            await asyncio.sleep(max(0.0, start + seq * 0.1 - loop.time()))
        await asyncio.sleep(0.2)
        return dashboard, ticks

    dashboard, ticks = asyncio.run(main())
    stats = dashboard.stats()
    for chart in dashboard.charts.values():
        # One frame per tick, its market_data + indicators coalesced (a stalled CI machine
        # may merge a couple of ticks into one frame).
        assert chart.render_stats.received == 2 * ticks
        assert ticks - 2 <= chart.render_stats.flushed <= ticks
    with capsys.disabled():
        print(report(f"default feed: 5 symbols x 10 ticks/s x {ticks / 10:g} s", stats))
    dashboard.close()


def test_default_budget_caps_comm_messages_at_what_the_browser_renders(
    comms: CommLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 1,000 msg/s with the default frame rates, the kernel-wide budget (fresh here)
    holds every widget together to ``BROWSER_MSG_RATE`` comm messages per second (plus its
    depth and the last frame's excess over what it announced), and the charts and the table
    still end on the latest values."""
    monkeypatch.setattr(_render, "_KERNEL_BUDGET", None)
    messages = load_messages(int(RATE * DURATION))

    async def main() -> tuple[Dashboard, float, int]:
        dashboard = Dashboard(SYMBOLS, window=WINDOW)  # default fps
        updates0 = comms.updates
        started = time.perf_counter()
        await feed(dashboard, messages, RATE)
        await asyncio.sleep(1.5)  # the budget pays back what the last frames cost
        dashboard.flush()  # whatever is still pending
        return dashboard, time.perf_counter() - started, comms.updates - updates0

    dashboard, total, updates = asyncio.run(main())
    budget = _render.kernel_budget()
    assert budget.messages.rate == _render.BROWSER_MSG_RATE < _render.IOPUB_MSG_RATE
    # The budget's guarantee, plus what frames may cost beyond what they announced (a
    # rebase frame of each chart: history, tail, header, 2 scales/axes and the margin) and
    # the final explicit flush.
    excess = len(SYMBOLS) * 7 + 2
    allowed = _render.BROWSER_MSG_RATE * (_render.BUDGET_BURST + total) + excess
    assert updates <= allowed, (updates, allowed, total)
    assert budget.messages_sent <= allowed
    for symbol, chart in dashboard.charts.items():
        last_md = next(
            m
            for m in reversed(messages)
            if m.message_type == "market_data" and m.data.symbol == symbol
        )
        assert chart.times()[-1] == np.datetime64(
            int(last_md.data.timestamp.timestamp() * 1000), "ms"
        )
        assert chart.render_stats.dropped == 0
        assert dashboard.table.shown[symbol]["price"] == last_md.data.price
    dashboard.close()
