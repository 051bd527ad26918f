"""Synthetic tick source for benchmarks: ``market_data`` straight into the hub at a set rate.

``feed = "synthetic"`` replaces the demo feed's fixed rate with ``synthetic_rate`` messages
per second spread round-robin over ``synthetic_topics`` symbols ``BENCH0`` ..
``BENCH{K-1}`` (topics ``market_data:BENCH{i}``). Each message's top-level ``timestamp`` (and
its payload's) is the moment it was published, so a client measures end-to-end latency as
receive time minus ``timestamp``.

The analytics engine is bypassed on purpose: the benchmark measures the transport (typed
message, serialize once, fan out, write), not the indicators (see
``python -m jupyter_rtstream.analytics.bench`` for those).

Pacing (:class:`RateSchedule`) is shared with the raw Tornado baseline of
``python -m jupyter_rtstream.bench`` so both systems are driven the same way: every loop
iteration publishes every message due by now (several per iteration at high rates, at most
``batch_seconds`` worth), then sleeps until the next one is due but never less than
``min_sleep`` (so that at 10k msg/s a wake-up publishes about ten messages rather than
waking ten times). A publisher that falls more than ``max_lag`` seconds behind (the server
is saturated) drops that backlog instead of bursting to catch up; ``skipped`` counts it.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime

from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.messages import MarketData, MarketDataPayload, topic_for, utc_now
from ..core.prebuilt import MarketDataTemplate
from .feed import BackgroundSource

SYMBOL_PREFIX = "BENCH"


def synthetic_symbols(topics: int) -> list[str]:
    """``["BENCH0", ..., "BENCH{topics-1}"]``."""
    return [f"{SYMBOL_PREFIX}{i}" for i in range(max(1, topics))]


class RateSchedule:
    """How many messages are due to hold ``rate`` per second since ``start`` (pure)."""

    def __init__(
        self,
        rate: float,
        start: float,
        *,
        batch_seconds: float = 0.01,
        max_lag: float = 1.0,
        min_sleep: float = 0.001,
    ) -> None:
        self.rate = float(rate)
        self.start = start
        self.sent = 0
        self.skipped = 0
        self.max_batch = max(1, int(self.rate * batch_seconds))
        self.max_lag = max_lag
        self.min_sleep = min_sleep

    def due(self, now: float) -> int:
        """Messages to publish now (the caller publishes them and calls :meth:`done`)."""
        if self.rate <= 0:
            return 0
        behind = int((now - self.start) * self.rate) - self.sent
        if behind > self.rate * self.max_lag:
            drop = behind - self.max_batch
            self.skipped += drop
            self.sent += drop
            behind = self.max_batch
        return max(0, min(behind, self.max_batch))

    def done(self, n: int) -> None:
        self.sent += n

    def delay(self, now: float) -> float:
        """Seconds to sleep before the next call of :meth:`due` (0: behind, go again)."""
        if self.rate <= 0:
            return 1.0
        wait = self.start + (self.sent + 1) / self.rate - now
        if wait <= 0:
            return 0.0
        return max(wait, self.min_sleep)


class SyntheticPublisher(BackgroundSource):
    """Publishes ``market_data`` for ``topics`` symbols at ``rate`` messages per second.

    A :class:`~jupyter_rtstream.server.feed.BackgroundSource` (``start``, ``stop``,
    ``running``), so the extension runs it like the simulated feed. Registers its symbols
    in ``instruments`` so clients can subscribe to them, but records no ticks there: the
    analytics engine never sees these symbols, so the analysis timer and the snapshot
    endpoint leave them alone.
    """

    def __init__(
        self,
        hub: Hub,
        instruments: InstrumentRegistry,
        rate: float,
        topics: int,
        log: logging.Logger | None = None,
        *,
        seed: int | None = 0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.hub = hub
        self.instruments = instruments
        self.rate = rate
        self.log = log or logging.getLogger(__name__)
        self.symbols = synthetic_symbols(topics)
        self._instruments = [instruments.register(s) for s in self.symbols]
        self._topics = [topic_for("market_data", s) for s in self.symbols]
        self._templates = [
            MarketDataTemplate(topic, instrument.instrument_id, instrument.symbol)
            for topic, instrument in zip(self._topics, self._instruments, strict=True)
        ]
        self._prices = [100.0 + 10.0 * i for i in range(len(self.symbols))]
        self._open = list(self._prices)
        self._rng = random.Random(seed)
        self._next = 0
        self._clock = clock
        self.published = 0
        self.schedule: RateSchedule | None = None

    def publish_one(self) -> None:
        """Publish the next message (round-robin over the symbols), serialized from the
        topic's :class:`~jupyter_rtstream.core.prebuilt.MarketDataTemplate`: the frame
        ``encode(MarketData(...))`` would give, without building the model."""
        i = self._next
        self._next = (i + 1) % len(self.symbols)
        price = round(self._prices[i] * (1.0 + 0.0002 * (self._rng.random() - 0.5)), 4)
        self._prices[i] = price
        volume = float(100 * (1 + (self.published % 50)))
        now = utc_now()
        change = (price / self._open[i] - 1.0) * 100.0
        parts = self._templates[i].parts(now, price, volume, now, change)
        if parts is not None:  # the common case: the same text, no model round trip
            self.hub.publish_parts(self._topics[i], *parts)
        else:
            self._publish_model(i, now, price, volume, change)
        self.published += 1
        self.ticks += 1

    def _publish_model(
        self, i: int, now: datetime, price: float, volume: float, change: float
    ) -> None:
        """Build and validate the model (a value the template leaves to pydantic)."""
        instrument = self._instruments[i]
        self.hub.publish(
            MarketData(
                topic=self._topics[i],
                timestamp=now,
                data=MarketDataPayload(
                    instrument_id=instrument.instrument_id,
                    symbol=instrument.symbol,
                    price=price,
                    volume=volume,
                    timestamp=now,
                    change_percent=change,
                ),
            )
        )

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        clock = self._clock or loop.time
        schedule = self.schedule = RateSchedule(self.rate, clock())
        self.log.info(
            "rtstream: synthetic publisher at %s msg/s over %d topics", self.rate, len(self._topics)
        )
        while True:
            n = schedule.due(clock())
            for _ in range(n):
                try:
                    self.publish_one()
                except Exception:  # pragma: no cover - keep publishing whatever happens
                    self.log.exception("rtstream: synthetic publish failed")
            schedule.done(n)
            await asyncio.sleep(schedule.delay(clock()))
