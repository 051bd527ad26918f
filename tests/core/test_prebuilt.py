"""Prebuilt market_data frames are exactly what the pydantic models give, and parse back."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_rtstream.core.codec import decode_server, encode
from jupyter_rtstream.core.messages import MarketData, MarketDataPayload
from jupyter_rtstream.core.prebuilt import MarketDataTemplate

TOPIC = "market_data:BENCH0"

finite = st.floats(allow_nan=False, allow_infinity=False)
moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(timezone.utc)
)


def _model(
    seq: int, at: datetime, price: float, volume: float, data_at: datetime, change: float
) -> MarketData:
    return MarketData(
        topic=TOPIC,
        timestamp=at,
        seq=seq,
        data=MarketDataPayload(
            instrument_id=7,
            symbol="BENCH0",
            price=price,
            volume=volume,
            timestamp=data_at,
            change_percent=change,
        ),
    )


@given(
    seq=st.integers(min_value=1, max_value=2**53),
    at=moments,
    data_at=moments,
    price=finite,
    volume=finite,
    change=finite,
)
def test_parts_are_the_models_text_or_none(
    seq: int, at: datetime, data_at: datetime, price: float, volume: float, change: float
) -> None:
    parts = MarketDataTemplate(TOPIC, 7, "BENCH0").parts(at, price, volume, data_at, change)
    expected = encode(_model(seq, at, price, volume, data_at, change))
    if parts is None:  # left to the model: only values whose repr pydantic writes otherwise
        assert any("e" in repr(v) for v in (price, volume, change))
        return
    text = f"{parts[0]}{seq}{parts[1]}"
    assert text == expected
    decoded = decode_server(text)
    assert isinstance(decoded, MarketData)
    assert decoded == _model(seq, at, price, volume, data_at, change)


def test_values_pydantic_writes_otherwise_are_left_to_the_model() -> None:
    template = MarketDataTemplate(TOPIC, 7, "BENCH0")
    now = datetime.now(timezone.utc)
    for odd in (1e-05, 1e16, math.inf, -math.inf, math.nan):
        assert template.parts(now, odd, 1.0, now, 0.0) is None
        assert template.parts(now, 1.0, odd, now, 0.0) is None
        assert template.parts(now, 1.0, 1.0, now, odd) is None
    assert template.parts(now, 0.0001, -0.0, now - timedelta(seconds=1), 100.0) is not None


@pytest.mark.parametrize(
    ("topic", "symbol"),
    [
        ('market_data:A"B\\C', 'A"B\\C'),  # JSON escapes, as pydantic writes them
        # UTF-8 as is, where ``json.dumps`` would escape it: the same bytes on the wire (and
        # the same ``nbytes`` in the outbox) whichever path built the frame.
        ("market_data:ÄPFEL", "ÄPFEL"),
    ],
)
def test_names_are_written_as_pydantic_writes_them(topic: str, symbol: str) -> None:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)  # no microseconds
    parts = MarketDataTemplate(topic, 3, symbol).parts(now, 1.5, 2.0, now, -0.25)
    assert parts is not None
    model = MarketData(
        topic=topic,
        timestamp=now,
        seq=12,
        data=MarketDataPayload(
            instrument_id=3,
            symbol=symbol,
            price=1.5,
            volume=2.0,
            timestamp=now,
            change_percent=-0.25,
        ),
    )
    assert f"{parts[0]}12{parts[1]}" == encode(model)
