"""From a tick to published messages: instruments, analytics, alerts, the hub."""

from __future__ import annotations

from ..core.hub import Hub
from ..core.instruments import Instrument, InstrumentRegistry
from ..core.messages import MarketData, MarketDataPayload, topic_for
from .feed import Tick


class Pipeline:
    """Applies ticks in order; everything a tick causes is published before the next one."""

    def __init__(self, hub: Hub, instruments: InstrumentRegistry) -> None:
        self.hub = hub
        self.instruments = instruments
        self.ticks = 0

    def on_tick(self, tick: Tick, *, publish: bool = True) -> Instrument:
        instrument = self.instruments.register(tick.symbol)
        change = instrument.apply(tick.price, tick.volume, tick.timestamp)
        self.ticks += 1
        if publish:
            self.hub.publish(
                MarketData(
                    topic=topic_for("market_data", instrument.symbol),
                    data=MarketDataPayload(
                        instrument_id=instrument.instrument_id,
                        symbol=instrument.symbol,
                        price=tick.price,
                        volume=tick.volume,
                        timestamp=tick.timestamp,
                        change_percent=change,
                    ),
                )
            )
        return instrument

    def publish_tick(self, tick: Tick) -> None:
        """Apply and publish one tick (the tick sources' callback)."""
        self.on_tick(tick)

    def snapshot(self, symbol: str) -> dict[str, object] | None:
        """Latest state of one instrument, for the REST snapshot endpoint."""
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return None
        return {
            "instrument_id": instrument.instrument_id,
            "symbol": instrument.symbol,
            "price": instrument.price,
            "volume": instrument.volume,
            "timestamp": instrument.timestamp,
            "indicators": {},
            "analysis": {},
        }
