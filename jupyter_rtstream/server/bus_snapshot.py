"""``GET rtstream/api/instruments/{symbol}/snapshot`` on the Redis bus: from the shared
stream (the latest relayed market data, indicators and analysis), so every server answers
with the feed's values rather than its own warm-up of the analytics."""

from __future__ import annotations

import json
from typing import Any

from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.vocabulary import normalize_symbol, topic_for


def _data(hub: Hub, kind: str, symbol: str) -> dict[str, Any] | None:
    frame = hub.latest(topic_for(kind, symbol))
    if frame is None:
        return None
    data: dict[str, Any] = json.loads(frame.text)["data"]
    return data


def snapshot_from_stream(
    hub: Hub, instruments: InstrumentRegistry, symbol: str
) -> dict[str, Any] | None:
    """The snapshot body from the latest relayed frames, or None if nothing was relayed."""
    instrument = instruments.get(normalize_symbol(symbol))
    if instrument is None:
        return None
    market = _data(hub, "market_data", instrument.symbol)
    if market is None:
        return None
    indicators = _data(hub, "technical_indicators", instrument.symbol) or {}
    analysis = _data(hub, "analytics", instrument.symbol) or {}
    return {
        "instrument_id": instrument.instrument_id,
        "symbol": instrument.symbol,
        "price": market["price"],
        "volume": market["volume"],
        "timestamp": market["timestamp"],
        "indicators": indicators.get("indicators", {}),
        "analysis": analysis.get("results", {}),
    }
