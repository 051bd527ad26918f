"""From a tick to published messages: instruments, analytics, alerts, the hub.

Per tick, in order: the analytics engine updates (and refuses a bad tick before any state
changes), the instrument records the tick, then ``market_data``, ``technical_indicators``
and any fired ``alert`` goes to the :class:`~.alert_commit.AlertCommitter`, which commits
it to SQLite (off the event loop) *before* publishing it, in order, so every alert a
client can see is also in ``GET rtstream/api/alerts``.

The pipeline also knows which symbols are *active* (ticked within ``symbol_ttl``), in
order of their last tick: the per-second analytics visit only those, and the
housekeeping timer releases the buffers of the others (:meth:`Pipeline.idle_symbols`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from ..analytics import AlertRule, AnalyticsEngine
from ..core.hub import Hub
from ..core.instruments import Instrument, InstrumentRegistry
from ..core.messages import (
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
from .alert_commit import AlertCommitter
from .feed import Tick
from .store_worker import StoreWorker

log = logging.getLogger(__name__)


class Pipeline:
    """Applies ticks in order; everything a tick causes is published before the next one."""

    def __init__(
        self,
        hub: Hub,
        instruments: InstrumentRegistry,
        engine: AnalyticsEngine | None = None,
        worker: StoreWorker | None = None,
        *,
        last_alert_id: int = 0,
        max_unsaved_alerts: int = 10_000,
        symbol_ttl: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.hub = hub
        self.instruments = instruments
        self.engine = engine or AnalyticsEngine()
        self.committer = AlertCommitter(
            hub, worker, last_alert_id=last_alert_id, max_pending=max_unsaved_alerts
        )
        self.symbol_ttl = symbol_ttl
        self.clock = clock
        self.ticks = 0
        #: Rule slots held by REST requests whose rule is being stored (``max_rules``).
        self.rules_reserved = 0
        #: symbol -> clock() of its last tick, least recently ticked first.
        self._active: dict[str, float] = {}

    @property
    def alerts(self) -> int:
        """Alerts published so far (each committed first)."""
        return self.committer.published

    @property
    def alerts_dropped(self) -> int:
        return self.committer.dropped

    # ------------------------------------------------------------------ ticks

    def on_tick(self, tick: Tick, *, publish: bool = True, seed: bool = False) -> Instrument:
        """Apply one tick; ``publish=False`` warms state from history (no messages, no
        alerts), and with ``seed=True`` also records its messages, dated by the tick, as the
        topics' seeded history (:meth:`Hub.seed`: readable by the history API, sent to
        no one). Raises ``ValueError`` for a tick the analytics refuse (nothing changes)."""
        result = self.engine.on_tick(
            tick.symbol, tick.price, tick.volume, tick.timestamp, evaluate_rules=publish
        )
        instrument = self.instruments.register(tick.symbol)
        change = instrument.apply(tick.price, tick.volume, tick.timestamp)
        self.ticks += 1
        active = self._active
        active.pop(instrument.symbol, None)  # re-insert: the dict stays ordered by recency
        active[instrument.symbol] = self.clock()
        if not publish and not seed:
            return instrument
        symbol, iid = instrument.symbol, instrument.instrument_id
        at = tick.timestamp if seed and not publish else utc_now()
        market = MarketData(
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
        indicators = TechnicalIndicators(
            topic=topic_for("technical_indicators", symbol),
            data=TechnicalIndicatorsPayload(
                instrument_id=iid, symbol=symbol, indicators=result.indicators, calculated_at=at
            ),
        )
        if not publish:
            market.timestamp = indicators.timestamp = at
            self.hub.seed(market)
            self.hub.seed(indicators)
            return instrument
        self.hub.publish(market)
        self.hub.publish(indicators)
        if result.alerts:
            self.committer.submit(result.alerts)
        return instrument

    def on_relayed(self, tick: Tick, live: bool = True) -> None:
        """A tick of the shared feed (Redis bus), published already by the feed service:
        it updates this server's analytics and instrument and, when ``live``, evaluates this
        server's alert rules (a fired alert is committed, then published here)."""
        try:
            result = self.engine.on_tick(
                tick.symbol, tick.price, tick.volume, tick.timestamp, evaluate_rules=live
            )
        except ValueError:
            log.warning("rtstream: relayed tick refused by the analytics: %s", tick)
            return
        instrument = self.instruments.register(tick.symbol)
        instrument.apply(tick.price, tick.volume, tick.timestamp)
        self.ticks += 1
        self._active.pop(instrument.symbol, None)
        self._active[instrument.symbol] = self.clock()
        if result.alerts:
            self.committer.submit(result.alerts)

    def publish_tick(self, tick: Tick) -> None:
        """Apply and publish one tick (the tick sources' callback)."""
        self.on_tick(tick)

    # ------------------------------------------------------------------ rules and activity

    def add_rule(self, rule: AlertRule) -> None:
        self.engine.add_rule(rule)

    def remove_rule(self, rule_id: int) -> bool:
        return self.engine.remove_rule(rule_id)

    def active_symbols(self) -> list[str]:
        """Symbols that ticked within ``symbol_ttl``, least recently ticked first."""
        self._expire()
        return list(self._active)

    def idle_symbols(self) -> list[str]:
        """Known symbols with no tick within ``symbol_ttl`` (their buffers may go)."""
        self._expire()
        return [i.symbol for i in self.instruments if i.symbol not in self._active]

    def _expire(self) -> None:
        horizon = self.clock() - self.symbol_ttl
        active = self._active
        while active:
            symbol, last = next(iter(active.items()))
            if last > horizon:
                break
            del active[symbol]

    # ------------------------------------------------------------------ analysis

    def publish_analysis(self, interval: float) -> int:
        """Publish ``analytics_update`` for every active instrument (ticked within
        ``symbol_ttl``): the work per call scales with active symbols, not known ones."""
        now = utc_now()
        next_update = now + timedelta(seconds=interval) if interval > 0 else None
        published = 0
        for symbol in self.active_symbols():
            instrument = self.instruments.get(symbol)
            if instrument is None:
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
