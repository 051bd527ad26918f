"""Housekeeping with a fake clock and a real SQLite file: replay buffers trimmed by age,
idle symbols released (still known), analytics only for active symbols, history pruned."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path

from jupyter_rtstream.analytics import FiredAlert
from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.server.feed import Tick
from jupyter_rtstream.server.housekeeping import Housekeeping
from jupyter_rtstream.server.pipeline import Pipeline
from jupyter_rtstream.server.store import AlertStore
from jupyter_rtstream.server.store_worker import StoreWorker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _setup(clock: FakeClock, worker: StoreWorker | None = None) -> tuple[Hub, Pipeline]:
    hub = Hub(replay_messages=10, replay_seconds=60.0, clock=clock)
    pipeline = Pipeline(hub, InstrumentRegistry(), worker=worker, symbol_ttl=3600.0, clock=clock)
    return hub, pipeline


def tick(symbol: str, price: float = 10.0) -> Tick:
    return Tick(symbol, price, 1.0, datetime.now(UTC))


async def test_idle_symbols_release_buffers_and_stop_analytics() -> None:
    clock = FakeClock()
    hub, pipeline = _setup(clock)
    chores = Housekeeping(hub, pipeline, None, retention_seconds=1.0, max_rows=10)
    hub.connect("c")
    for symbol in ("IDLE", "BUSY"):
        pipeline.on_tick(tick(symbol))  # known and ticked before anyone watches
        hub.subscribe("c", f"market_data:{symbol}")
    for symbol in ("IDLE", "BUSY", "WATCHED"):
        hub.subscribe("c", f"analytics:{symbol}")
    for i in range(100):
        pipeline.on_tick(tick("IDLE", 10.0 + i % 3))
        pipeline.on_tick(tick("BUSY"))
        pipeline.on_tick(tick("NOBODY"))
    hub.subscribe("c", "market_data:WATCHED")
    pipeline.on_tick(tick("WATCHED"))
    # The snapshot built on subscribe, then every tick.
    assert len(hub.topics["market_data:IDLE"].buffer) == 101  # all within 60 s
    assert "market_data:NOBODY" not in hub.topics, "never watched: nothing built"
    clock.now += 120.0
    chores.run()  # trimmed by age: down to replay_messages, not left at the burst
    assert len(hub.topics["market_data:IDLE"].buffer) == 10
    assert pipeline.publish_analysis(1.0) == 3, "watched analytics of active symbols"
    hub.unsubscribe("c", "market_data:IDLE")
    clock.now += 3600.0
    pipeline.on_tick(tick("BUSY"))
    chores.run()
    assert hub.topics["market_data:IDLE"].buffer == type(hub.topics["market_data:IDLE"].buffer)()
    assert hub.latest("market_data:IDLE") is None
    assert len(hub.topics["market_data:WATCHED"].buffer) == 1, "a subscribed topic is kept"
    assert len(hub.topics["market_data:BUSY"].buffer) > 0
    assert "IDLE" in pipeline.instruments, "released, still known"
    assert pipeline.active_symbols() == ["BUSY"]
    assert pipeline.publish_analysis(1.0) == 1, "analytics visit active symbols only"
    seq = hub.topics["market_data:IDLE"].seq
    pipeline.on_tick(tick("IDLE"))
    pipeline.on_tick(tick("IDLE"))
    assert hub.topics["market_data:IDLE"].seq == seq, "not watched any more: not built"
    result = hub.subscribe("c", "market_data:IDLE")
    # The latest tick, built now; the one before was never built: a hole.
    assert result.snapshot and result.frames[0].seq == seq + 2, "seq goes on, past a hole"


def fired(i: int) -> FiredAlert:
    return FiredAlert(1, "XYZ", "r", "price_above", 1.0, 2.0, "low", f"m{i}", datetime.now(UTC))


async def test_history_is_pruned_by_age_and_row_cap(tmp_path: Path) -> None:
    store = AlertStore(tmp_path / "h.sqlite")
    worker = StoreWorker(store)
    try:
        ids = await worker.call(store.record_alerts, [fired(i) for i in range(50)])
        assert ids == list(range(1, 51))
        hub, pipeline = _setup(FakeClock(), worker)
        chores = Housekeeping(hub, pipeline, worker, retention_seconds=3600.0, max_rows=20)
        chores.run()
        await asyncio.wait_for(chores._prune, 10) if chores._prune else None
        assert await worker.call(store.count_alerts) == 20
        kept = await worker.call(store.alerts_since, 0)
        assert [a["alert_id"] for a in kept] == list(range(31, 51)), "the newest are kept"
        await worker.call(
            store.db.execute, "UPDATE alerts SET recorded_at = ?", (time.time() - 7200,)
        )
        await chores.prune()
        assert await worker.call(store.count_alerts) == 0
        assert await worker.call(store.last_alert_id) == 50, "ids never restart"
    finally:
        worker.close()


async def test_an_hour_of_abuse_stays_bounded() -> None:
    """1 h-equivalent (fake clock): 1,000 symbols burst once, 5 keep ticking, 30 alert-free
    topics churn. Buffered frames end bounded by the active symbols, not by history."""
    clock = FakeClock()
    hub, pipeline = _setup(clock)
    chores = Housekeeping(hub, pipeline, None, retention_seconds=1.0, max_rows=10)
    for i in range(1000):  # the abuse: every symbol a burst of 20 ticks
        for _ in range(20):
            pipeline.on_tick(tick(f"S{i}"))
    for _second in range(2 * 3600 // 10):  # then two hours, one round every 10 s
        clock.now += 10.0
        for j in range(5):
            pipeline.on_tick(tick(f"LIVE{j}"))
        if _second % 6 == 0:
            chores.run()  # the timer (housekeeping_interval 60 s)
    buffered = sum(len(t.buffer) for t in hub.topics.values())
    snapshots = sum(t.last is not None for t in hub.topics.values())
    # 5 live symbols x 2 streamed topics x replay_messages(10) frames; the rest released.
    assert buffered <= 5 * 2 * 10, buffered
    assert snapshots <= 5 * 2
    assert len(pipeline.active_symbols()) == 5
