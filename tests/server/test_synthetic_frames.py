"""The synthetic feed's frames (built from a template, no model) are the models' frames."""

from __future__ import annotations

from jupyter_rtstream.core.codec import decode_server
from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.core.messages import MarketData
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
