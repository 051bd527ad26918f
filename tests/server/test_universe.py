"""Cost follows what is watched (issue 19), with the real hub, pipeline, engine, simulated
market and warm-up, a fake clock, and no I/O: what is built for watched and unwatched
topics, the replay window, the snapshot built on demand, the background warm-up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from jupyter_rtstream.analytics import AlertRule, AnalyticsEngine
from jupyter_rtstream.analytics.indicator_set import IndicatorSet
from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.server.feed import SimulatedMarket, Tick
from jupyter_rtstream.server.pipeline import Pipeline
from jupyter_rtstream.server.warmup import Warmup


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup(symbols: list[str], clock: FakeClock) -> tuple[Hub, Pipeline]:
    hub = Hub(replay_messages=5, replay_seconds=60.0, clock=clock)
    pipeline = Pipeline(hub, InstrumentRegistry(symbols), AnalyticsEngine(), clock=clock)
    return hub, pipeline


def tick(symbol: str, price: float) -> Tick:
    return Tick(symbol, price, 100.0, datetime.now(UTC))


def decode_server(text: str) -> Any:
    """A wire message as attributes (``m.data.price``), timestamps parsed."""

    def hook(obj: dict[str, Any]) -> Any:
        for key in ("timestamp", "calculated_at"):
            if isinstance(obj.get(key), str):
                obj[key] = datetime.fromisoformat(obj[key].replace("Z", "+00:00"))
        return SimpleNamespace(**obj) if "message_type" in obj or "symbol" in obj else obj

    return json.loads(text, object_hook=hook)


def universe(n: int) -> list[str]:
    return [f"U{i}" for i in range(n)]


def test_unwatched_topics_build_nothing_but_indicators_and_rules_stay_exact() -> None:
    clock = FakeClock()
    hub, pipeline = setup(universe(50), clock)
    pipeline.add_rule(
        AlertRule(1, "U49 over 120", "U49", "price_above", 120.0, "high", cooldown_seconds=0.0)
    )
    reference = IndicatorSet()
    prices = [100.0 + (i % 7) for i in range(40)] + [125.0]
    for price in prices:
        values = reference.update(price, 100.0)
        for symbol in universe(50):
            pipeline.on_tick(tick(symbol, price))
    # Only the alert (on alerts:U49 and alerts:*): no market data or indicators for anyone.
    assert sorted(hub.topics) == ["alerts:*", "alerts:U49"] and hub.published == 2
    assert pipeline.committer.published == 1, "the rule of an unwatched symbol fired"
    assert pipeline.engine.indicators("U49") == values, "indicators saw every tick"
    assert pipeline.publish_analysis(1.0) == 0, "no watched analytics topic"
    snapshot = pipeline.snapshot("U7")
    assert snapshot is not None and snapshot["price"] == 125.0 and not snapshot["warming"]
    assert snapshot["indicators"] == values, "the snapshot is built on demand"


def test_first_subscriber_gets_the_current_state_then_every_tick() -> None:
    clock = FakeClock()
    hub, pipeline = setup(universe(3), clock)
    for price in (10.0, 11.0, 12.0):
        pipeline.on_tick(tick("U1", price))
    hub.connect("c")
    for kind in ("market_data", "technical_indicators", "analytics"):
        result = hub.subscribe("c", f"{kind}:U1")
        assert result.snapshot and len(result.frames) == 1, kind
        message = decode_server(result.frames[0].text)
        assert message.data.symbol == "U1" and message.seq == result.seq == 1
    latest = hub.latest("market_data:U1")
    assert latest is not None
    first = decode_server(latest.text)
    assert first.data.price == 12.0
    pipeline.on_tick(tick("U1", 13.0))
    pipeline.on_tick(tick("U2", 13.0))
    outbox = hub.clients["c"]
    texts = [decode_server(text) for text in outbox.drain()]
    assert [(m.topic, m.seq) for m in texts] == [
        ("market_data:U1", 2),
        ("technical_indicators:U1", 2),
    ]
    assert pipeline.publish_analysis(1.0) == 1, "the watched analytics topic only"


def test_a_topic_stays_built_for_the_replay_window_then_resume_says_not_recovered() -> None:
    clock = FakeClock()
    hub, pipeline = setup(["AAA"], clock)
    pipeline.on_tick(tick("AAA", 10.0))
    hub.connect("c")
    hub.subscribe("c", "market_data:AAA")
    pipeline.on_tick(tick("AAA", 11.0))
    last_seen = hub.last_seq("market_data:AAA")
    hub.disconnect("c")
    # Within replay_seconds after the last subscriber left: still built and buffered.
    for i in range(3):
        clock.now += 10.0
        pipeline.on_tick(tick("AAA", 12.0 + i))
    hub.connect("c")
    resumed = hub.subscribe("c", "market_data:AAA", resume_from=last_seen, epoch=hub.epoch)
    assert resumed.recovered is True
    assert [f.seq for f in resumed.frames] == [last_seen + 1, last_seen + 2, last_seen + 3]
    last_seen = resumed.seq
    hub.disconnect("c")
    clock.now += 61.0  # the window is over: nothing is built any more
    published = hub.published
    pipeline.on_tick(tick("AAA", 20.0))
    pipeline.on_tick(tick("AAA", 21.0))
    assert hub.published == published and hub.last_seq("market_data:AAA") == last_seen
    hub.connect("c")
    resumed = hub.subscribe("c", "market_data:AAA", resume_from=last_seen, epoch=hub.epoch)
    assert resumed.recovered is False, "ticks were not built: no lossless resume claimed"
    assert resumed.snapshot and len(resumed.frames) == 1
    snapshot = decode_server(resumed.frames[0].text)
    assert snapshot.data.price == 21.0, "the current state, built on demand"
    assert snapshot.seq > last_seen + 1, "a hole in the seqs marks what was not built"


def test_warmup_in_the_background_and_on_first_use() -> None:
    clock = FakeClock()
    symbols = universe(20)
    hub, pipeline = setup(symbols, clock)
    market = SimulatedMarket(symbols, seed=3, live=False)
    end = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    warmup = Warmup(pipeline, market, 40, 1.0, end)
    pipeline.warmup = warmup
    assert warmup.run_for(0) == 1, "at least one symbol per call"
    assert list(market.live) == ["U0"], "only a warmed symbol ticks"
    assert warmup.pending == 19
    late = pipeline.snapshot("U19")
    assert late is not None and late["warming"] is True
    assert late["indicators"] == {} and late["price"] is None, "no indicator while warming"
    assert warmup.run_for(1) == 1
    assert "U19" in market.live, "a snapshot moved it to the front"
    warm = pipeline.snapshot("U19")
    assert warm is not None and warm["warming"] is False
    assert all(v is not None for v in warm["indicators"].values()), "40 ticks >= MACD's 34"
    # A subscriber to a symbol still warming: warmed at once, never an indicator before.
    assert pipeline.warming("U10")
    hub.connect("c")
    result = hub.subscribe("c", "technical_indicators:U10")
    assert not pipeline.warming("U10")
    indicators = decode_server(result.frames[0].text).data.indicators
    assert all(v is not None for v in indicators.values())
    # ... its seeded history, recorded now (seqs 1..40, dated by the ticks), whose newest
    # message is the snapshot (the symbol has not ticked live yet).
    seeded = [decode_server(t) for t in hub.history("technical_indicators:U10")]
    assert [m.seq for m in seeded] == list(range(1, 41)) and result.frames[0].seq == 40
    assert seeded[39].data.calculated_at == end - timedelta(seconds=1)
    assert seeded[39].data.indicators == indicators, "the engine's values, drawn again"
    prices = [decode_server(t).data.price for t in hub.history("market_data:U10")]
    assert prices == [t.price for t in market.replay_history("U10", 40, 1.0, end)]
    # The same seed gives the same paths, whatever the order of the warm-up.
    again = SimulatedMarket(symbols, seed=3, live=False)
    assert again.symbol_history("U10", 40, 1.0, end) == market.replay_history("U10", 40, 1.0, end)
    while warmup.pending:
        warmup.run_for(100)
    assert list(market.live) == list(dict.fromkeys(["U0", "U19", "U10", *symbols]))
