"""From a tick to published messages: instruments, analytics, alerts, the hub.

Per tick, in order: the analytics engine updates (and refuses a bad tick before any state
changes), the instrument records the tick, then ``market_data``, ``technical_indicators``
and any fired ``alert`` are published. An alert is committed to SQLite *before* it is
published, so every alert a client can see is also in ``GET rtstream/api/alerts``; if the
write fails the alert waits in a bounded retry queue and goes out, in order, once it is
stored.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import deque
from datetime import datetime, timedelta
from typing import Any

from ..analytics import AlertRule, AnalyticsEngine, FiredAlert
from ..core.hub import Hub
from ..core.instruments import Instrument, InstrumentRegistry
from ..core.messages import (
    ALL_SYMBOLS,
    Alert,
    AlertPayload,
    AnalysisResults,
    AnalyticsUpdate,
    AnalyticsUpdatePayload,
    MarketData,
    MarketDataPayload,
    TechnicalIndicators,
    TechnicalIndicatorsPayload,
    topic_for,
    utc_now,
)
from .feed import Tick
from .store import AlertStore

log = logging.getLogger(__name__)

ALL_ALERTS_TOPIC = topic_for("alerts", ALL_SYMBOLS)


class Pipeline:
    """Applies ticks in order; everything a tick causes is published before the next one."""

    def __init__(
        self,
        hub: Hub,
        instruments: InstrumentRegistry,
        engine: AnalyticsEngine | None = None,
        store: AlertStore | None = None,
        *,
        max_unsaved_alerts: int = 10_000,
    ) -> None:
        self.hub = hub
        self.instruments = instruments
        self.engine = engine or AnalyticsEngine()
        self.store = store
        self.ticks = 0
        self.alerts = 0
        self.alerts_dropped = 0
        self._unsaved: deque[FiredAlert] = deque(maxlen=max_unsaved_alerts)

    # ------------------------------------------------------------------ ticks

    def on_tick(self, tick: Tick, *, publish: bool = True) -> Instrument:
        """Apply one tick; ``publish=False`` warms state from history (no messages, no
        alerts). Raises ``ValueError`` for a tick the analytics refuse (nothing changes)."""
        result = self.engine.on_tick(
            tick.symbol, tick.price, tick.volume, tick.timestamp, evaluate_rules=publish
        )
        instrument = self.instruments.register(tick.symbol)
        change = instrument.apply(tick.price, tick.volume, tick.timestamp)
        self.ticks += 1
        if not publish:
            return instrument
        symbol, iid = instrument.symbol, instrument.instrument_id
        self.hub.publish(
            MarketData(
                topic=topic_for("market_data", symbol),
                data=MarketDataPayload(
                    instrument_id=iid,
                    symbol=symbol,
                    price=tick.price,
                    volume=tick.volume,
                    timestamp=tick.timestamp,
                    change_percent=change,
                ),
            )
        )
        self.hub.publish(
            TechnicalIndicators(
                topic=topic_for("technical_indicators", symbol),
                data=TechnicalIndicatorsPayload(
                    instrument_id=iid,
                    symbol=symbol,
                    indicators=result.indicators,
                    calculated_at=utc_now(),
                ),
            )
        )
        if result.alerts or self._unsaved:
            for fired in result.alerts:
                if len(self._unsaved) == self._unsaved.maxlen:
                    # Only when the store has been failing for a long time: say so loudly.
                    self.alerts_dropped += 1
                    log.error("rtstream: alert store unavailable; dropping the oldest alert")
                self._unsaved.append(fired)
            self._flush_alerts()
        return instrument

    def publish_tick(self, tick: Tick) -> None:
        """Apply and publish one tick (the tick sources' callback)."""
        self.on_tick(tick)

    # ------------------------------------------------------------------ alerts

    def _flush_alerts(self) -> None:
        while self._unsaved:
            fired = self._unsaved[0]
            try:
                alert_id = self.store.record_alert(fired) if self.store else self.alerts + 1
            except Exception:
                log.exception("rtstream: could not store alert; will retry on the next tick")
                return
            self._unsaved.popleft()
            self.alerts += 1
            # A FiredAlert is the alert payload minus the id that storage assigns.
            payload = AlertPayload(alert_id=alert_id, **dataclasses.asdict(fired))
            self.hub.publish(
                Alert(topic=topic_for("alerts", fired.symbol), data=payload),
                also=(ALL_ALERTS_TOPIC,),
            )

    def add_rule(self, rule: AlertRule) -> None:
        self.engine.add_rule(rule)

    def remove_rule(self, rule_id: int) -> bool:
        return self.engine.remove_rule(rule_id)

    # ------------------------------------------------------------------ analysis

    def publish_analysis(self, interval: float) -> int:
        """Publish ``analytics_update`` for every instrument that has ticked."""
        now = utc_now()
        next_update = now + timedelta(seconds=interval) if interval > 0 else None
        published = 0
        for instrument in self.instruments:
            if instrument.ticks == 0:
                continue
            self.hub.publish(
                AnalyticsUpdate(
                    topic=topic_for("analytics", instrument.symbol),
                    data=AnalyticsUpdatePayload(
                        instrument_id=instrument.instrument_id,
                        symbol=instrument.symbol,
                        analysis_type="market_analysis",
                        results=self.analysis(instrument.symbol),
                        calculation_time=now,
                        next_update=next_update,
                    ),
                )
            )
            published += 1
        return published

    def analysis(self, symbol: str) -> AnalysisResults:
        results = self.engine.analysis(symbol)
        if results.get("trend") is None:  # too few ticks for the slow EMA yet
            results = {**results, "trend": "neutral"}
        return AnalysisResults.model_validate(results)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        """Latest state of one instrument, for the REST snapshot endpoint."""
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return None
        ticked = instrument.ticks > 0
        timestamp: datetime | None = instrument.timestamp
        return {
            "instrument_id": instrument.instrument_id,
            "symbol": instrument.symbol,
            "price": instrument.price,
            "volume": instrument.volume,
            "timestamp": timestamp,
            "indicators": self.engine.indicators(instrument.symbol) if ticked else {},
            "analysis": self.analysis(instrument.symbol).model_dump() if ticked else {},
        }
