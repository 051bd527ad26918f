"""From a tick to published messages: instruments, analytics, alerts, the hub.

Per tick, in order: the analytics engine updates (and refuses a bad tick before any state
changes), the instrument records the tick, then ``market_data``, ``technical_indicators``
and any fired ``alert`` goes to the :class:`~.alert_commit.AlertCommitter`, which commits
it to SQLite (off the event loop) *before* publishing it, in order, so every alert a
client can see is also in ``GET rtstream/api/alerts``.

The pipeline also knows which symbols are *active* (ticked within ``symbol_ttl``), in
order of their last tick: the housekeeping timer releases the buffers of the others
(:meth:`Pipeline.idle_symbols`).

Cost follows what is watched (issue 19): the analytics engine and the alert rules see
every tick of every symbol (they stay exact), but a ``market_data`` or
``technical_indicators`` message is built only for a topic the hub :meth:`~.Hub.wants`,
and the per-second ``analytics_update`` only for watched analytics topics of active
symbols. A topic's first subscriber gets its current state built on demand
(:meth:`Pipeline.on_watch`), after the symbol's seeded history, which is drawn again and
recorded only then (:mod:`.warmup` applied it to the engine without keeping it). The
feed service (bus) publishes everything: ``publish_all=True``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..analytics import AlertRule, AnalyticsEngine
from ..analytics.indicator_set import IndicatorSet
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
from ..core.prebuilt import MarketDataTemplate
from ..core.vocabulary import split_topic
from .alert_commit import AlertCommitter
from .feed import Tick
from .store_worker import StoreWorker

if TYPE_CHECKING:
    from .warmup import Warmup

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
        publish_all: bool = False,
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
        #: Build every message whether watched or not (the feed service of the bus).
        self.publish_all = publish_all
        #: The background warm-up of the seeded history (simulated feed), if any.
        self.warmup: Warmup | None = None
        #: Symbols whose seeded history went into the engine but not yet into the hub.
        self._with_history: set[str] = set()
        #: symbol -> its tick count when its market_data/technical_indicators messages
        #: were last built (or seeded): they are current while it has not ticked since.
        self._built: dict[str, int] = {}
        #: Symbols whose market_data/technical_indicators went out live (a client may hold
        #: their seqs: ticks left unbuilt after that leave a seq hole).
        self._live: set[str] = set()
        #: symbol -> its (market_data, technical_indicators) topic names.
        self._names: dict[str, tuple[str, str]] = {}
        #: symbol -> its market_data frame template (bounded by the known symbols, as above).
        self._templates: dict[str, MarketDataTemplate] = {}
        self._analytics_interval = 0.0
        if hub.on_watch is None:  # the app may wrap it (the shared feed's symbols)
            hub.on_watch = self.on_watch

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
        if publish and self.warmup is not None:  # e.g. a POSTed tick: history comes first
            self.warmup.warm(tick.symbol)
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
        symbol = instrument.symbol
        if publish and not self.publish_all:
            names = self._names.get(symbol)
            if names is None:
                names = self._names[symbol] = (
                    topic_for("market_data", symbol),
                    topic_for("technical_indicators", symbol),
                )
            hub = self.hub
            # Both topics or neither, so the same seq is the same tick on both.
            if hub.wants(names[0]) or hub.wants(names[1]):
                self._publish_both(instrument, names, tick, change, result.indicators)
            if result.alerts:
                self.committer.submit(result.alerts)
            return instrument
        # Everything (the feed service of the bus), or the seeded history (seed=True).
        at = tick.timestamp if seed and not publish else utc_now()
        market = self._market(instrument, tick, change)
        indicators = self._indicators(instrument, result.indicators, at)
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

    def _publish_both(
        self,
        instrument: Instrument,
        names: tuple[str, str],
        tick: Tick,
        change: float,
        values: dict[str, float | None],
    ) -> None:
        hub = self.hub
        symbol = instrument.symbol
        if symbol in self._live and self._built[symbol] < instrument.ticks - 1:
            for name in names:  # ticks went unbuilt since clients had seqs: a hole
                hub.advance(name, hub.last_seq(name) + 2)
        self._built[symbol] = instrument.ticks
        self._live.add(symbol)
        template = self._templates.get(symbol)
        if template is None:
            template = self._templates[symbol] = MarketDataTemplate(
                names[0], instrument.instrument_id, symbol
            )
        now = utc_now()
        parts = template.parts(now, tick.price, tick.volume, tick.timestamp, change)
        if parts is not None:  # the model's text without the model (core/prebuilt.py)
            hub.publish_parts(names[0], *parts)
        else:
            market = self._market(instrument, tick, change)
            market.timestamp = now
            hub.publish(market)
        hub.publish(self._indicators(instrument, values, now))

    @staticmethod
    def _market(instrument: Instrument, tick: Tick, change: float) -> MarketData:
        return MarketData(
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

    @staticmethod
    def _indicators(
        instrument: Instrument, values: dict[str, float | None], at: datetime
    ) -> TechnicalIndicators:
        return TechnicalIndicators(
            topic=topic_for("technical_indicators", instrument.symbol),
            data=TechnicalIndicatorsPayload(
                instrument_id=instrument.instrument_id,
                symbol=instrument.symbol,
                indicators=values,
                calculated_at=at,
            ),
        )

    # ------------------------------------------------------------------ watching

    def warming(self, symbol: str) -> bool:
        """Whether ``symbol``'s seeded history is still to be applied (no state yet)."""
        return self.warmup is not None and self.warmup.pending_for(symbol)

    def prepare(self, symbol: str) -> None:
        """First use of ``symbol`` (a subscribe, a history request): apply its seeded
        history now if the warm-up has not reached it, and record that history in its
        ``market_data`` and ``technical_indicators`` topics (seqs 1.., before any live
        message; both at once, so the same seq is the same tick on both) if not done yet."""
        warmup = self.warmup
        if warmup is None:
            return
        warmup.warm(symbol)
        if symbol not in self._with_history:
            return
        self._with_history.discard(symbol)
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return
        # The same ticks again, through a fresh indicator set (the values the engine
        # computed from them: it is deterministic), dated by the ticks.
        indicators = IndicatorSet()
        open_price: float | None = None
        ticks = warmup.replay(symbol)
        self._built[symbol] = len(ticks)
        for tick in ticks:
            open_price = open_price or tick.price
            values = indicators.apply(tick.price, tick.volume)
            market = self._market(instrument, tick, (tick.price / open_price - 1.0) * 100.0)
            technical = self._indicators(instrument, values, tick.timestamp)
            market.timestamp = technical.timestamp = tick.timestamp
            self.hub.seed(market)
            self.hub.seed(technical)

    def history_applied(self, symbol: str) -> None:
        """The warm-up applied ``symbol``'s seeded history to the engine (not to the hub)."""
        self._with_history.add(symbol)

    def on_watch(self, name: str) -> None:
        """The hub's :attr:`~.Hub.on_watch`: topic ``name`` gets its first subscriber while
        nothing is built for it. Prepare the symbol, then publish its current state (the
        subscriber's snapshot); nothing while the symbol has no state, and no indicators
        before its warm-up is complete."""
        kind, symbol = split_topic(name)
        if kind == "alerts":
            return
        self.prepare(symbol)
        instrument = self.instruments.get(symbol)
        if instrument is None or instrument.ticks == 0 or instrument.price is None:
            return
        hub = self.hub
        if kind == "analytics":
            if hub.last_seq(name):  # updates may have gone unbuilt meanwhile: a hole
                hub.advance(name, hub.last_seq(name) + 2)
            hub.publish(self._analytics_update(instrument, utc_now()))
            return
        if self._built.get(symbol) == instrument.ticks and hub.latest(name):
            return  # its latest message (live or seeded) is the current state
        if instrument.timestamp is None or self.warming(symbol):
            return
        names = self._names.get(symbol) or (
            topic_for("market_data", symbol),
            topic_for("technical_indicators", symbol),
        )
        open_price = instrument.open_price or instrument.price
        self._publish_both(
            instrument,
            names,
            Tick(symbol, instrument.price, instrument.volume, instrument.timestamp),
            (instrument.price / open_price - 1.0) * 100.0,
            self.engine.indicators(symbol),
        )

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
        ``symbol_ttl``) whose analytics topic is watched (every active one with
        ``publish_all``): the work per call scales with those, not with known symbols."""
        self._analytics_interval = interval
        now = utc_now()
        if self.publish_all:
            symbols = self.active_symbols()
        else:
            self._expire()
            active = self._active
            symbols = [
                symbol
                for symbol in (split_topic(n)[1] for n in self.hub.watched("analytics"))
                if symbol in active
            ]
        published = 0
        for symbol in symbols:
            instrument = self.instruments.get(symbol)
            if instrument is None or instrument.ticks == 0:
                continue
            self.hub.publish(self._analytics_update(instrument, now))
            published += 1
        return published

    def _analytics_update(self, instrument: Instrument, now: datetime) -> AnalyticsUpdate:
        interval = self._analytics_interval
        return AnalyticsUpdate(
            topic=topic_for("analytics", instrument.symbol),
            data=AnalyticsUpdatePayload(
                instrument_id=instrument.instrument_id,
                symbol=instrument.symbol,
                analysis_type="market_analysis",
                results=self.analysis(instrument.symbol),
                calculation_time=now,
                next_update=now + timedelta(seconds=interval) if interval > 0 else None,
            ),
        )

    def analysis(self, symbol: str) -> AnalysisResults:
        results = self.engine.analysis(symbol)
        if results.get("trend") is None:  # too few ticks for the slow EMA yet
            results = {**results, "trend": "neutral"}
        return AnalysisResults.model_validate(results)

    # ------------------------------------------------------------------ snapshots

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        """Latest state of one instrument, for the REST snapshot endpoint, built on demand
        from the engine (whether or not its topics are watched). While its seeded history
        is still to come, ``warming`` is true and there are no indicators (the warm-up then
        takes this symbol next)."""
        instrument = self.instruments.get(symbol)
        if instrument is None:
            return None
        warming = self.warming(instrument.symbol)
        if warming and self.warmup is not None:
            self.warmup.promote(instrument.symbol)
        ticked = instrument.ticks > 0 and not warming
        timestamp: datetime | None = instrument.timestamp
        return {
            "instrument_id": instrument.instrument_id,
            "symbol": instrument.symbol,
            "price": instrument.price,
            "volume": instrument.volume,
            "timestamp": timestamp,
            "indicators": self.engine.indicators(instrument.symbol) if ticked else {},
            "analysis": self.analysis(instrument.symbol).model_dump() if ticked else {},
            "warming": warming,
        }
