"""Our producers' market_data frames (built from a template, no model) are the models'."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from jupyter_rtstream.core.codec import decode_server, encode
from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.core.messages import MarketData
from jupyter_rtstream.server.feed import Tick
from jupyter_rtstream.server.pipeline import Pipeline
from jupyter_rtstream.server.synthetic import SyntheticPublisher


def test_synthetic_publisher_frames_are_the_models_frames() -> None:
    """The publisher's frames (via the template) equal the model path's, seq by seq."""
    fast_hub, model_hub = Hub(), Hub()
    fast = SyntheticPublisher(fast_hub, InstrumentRegistry(), 100.0, 3)
    slow = SyntheticPublisher(model_hub, InstrumentRegistry(), 100.0, 3)
    texts: list[str] = []
    for n in range(30):
        fast.publish_one()
        topic = fast._topics[n % 3]
        frame = fast_hub.latest(topic)
        assert frame is not None
        texts.append(frame.text)
        decoded = decode_server(frame.text)
        assert isinstance(decoded, MarketData)
        assert decoded.seq == n // 3 + 1
        # The same values through the model, numbered by the other hub.
        i = n % 3
        slow._next = i
        slow._prices[i] = decoded.data.price
        slow._publish_model(
            i,
            decoded.timestamp,
            decoded.data.price,
            decoded.data.volume,
            decoded.data.change_percent,
        )
        model_frame = model_hub.latest(topic)
        assert model_frame is not None
        assert model_frame.text == frame.text
    assert fast.published == 30
    assert len(set(texts)) == 30


def test_pipeline_market_data_frames_are_the_models_frames() -> None:
    """A watched symbol's market_data goes out from the template: parsed back and encoded
    again by the model it is the same text; values the template leaves to the model (an
    exponent-form float) still go out, through the model."""
    hub = Hub()
    pipeline = Pipeline(hub, InstrumentRegistry())
    hub.connect("c")
    hub.subscribe("c", "market_data:ACME")
    naive = datetime(2026, 3, 4, 5, 6, 7, 89)  # naive tick timestamps are taken as UTC
    ticks = [
        Tick("ACME", 101.25, 3.0, datetime.now(timezone.utc)),
        Tick("ACME", 101.5, 1e-05, naive),
        Tick("ACME", 99.0, 7.0, datetime.now(timezone(timedelta(hours=2)))),
    ]
    texts = []
    for tick in ticks:
        pipeline.on_tick(tick)
        frame = hub.latest("market_data:ACME")
        assert frame is not None
        texts.append(frame.text)
    for tick, text in zip(ticks, texts, strict=True):
        decoded = decode_server(text)
        assert isinstance(decoded, MarketData)
        assert encode(decoded) == text
        assert (decoded.data.price, decoded.data.volume) == (tick.price, tick.volume)
        assert decoded.data.timestamp == tick.timestamp.replace(
            tzinfo=tick.timestamp.tzinfo or timezone.utc
        )
    assert [decode_server(t).seq for t in texts] == [1, 2, 3]  # type: ignore[union-attr]
