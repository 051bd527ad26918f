"""The ``rtstream`` Jupyter server extension: configuration, lifecycle, shared runtime."""

from __future__ import annotations

import asyncio
import os
import random
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from tornado.ioloop import PeriodicCallback
from traitlets import Bool, Float, Integer, List, Unicode

from .._version import __version__
from ..analytics import AnalyticsEngine
from ..core.errors import CloseCode, close_reason
from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.messages import utc_now
from ..core.session import Limits
from .feed import DEFAULT_SYMBOLS, BackgroundSource, FeedRunner, SimulatedMarket
from .flush import Flusher
from .handlers import HANDLERS
from .pipeline import Pipeline
from .replay import CsvReplay
from .runtime import Connection
from .store import AlertStore
from .synthetic import SyntheticPublisher


class RtstreamApp(ExtensionApp):
    """Streams typed market data, indicators and alerts over ``{base_url}rtstream/ws``.

    Configure with ``c.RtstreamApp.<trait>`` in ``jupyter_server_config.py`` or in the
    extension's own ``jupyter_rtstream_config.py``.
    """

    name = "rtstream"
    description = __doc__ or ""
    load_other_extensions = True

    symbols = List(
        Unicode(), default_value=list(DEFAULT_SYMBOLS), help="Symbols of the simulated feed."
    ).tag(config=True)
    feed = Unicode(
        "simulated",
        help="Tick source: 'simulated' (embedded GBM feed), 'csv' (replay csv_path), "
        "'synthetic' (benchmark publisher: synthetic_rate msg/s over synthetic_topics) or 'none'.",
    ).tag(config=True)
    csv_path = Unicode("", help="CSV file (timestamp,symbol,price,volume) for feed='csv'.").tag(
        config=True
    )
    replay_speed = Float(
        1.0, help="CSV replay speed: 1 = recorded pace, 10 = ten times faster, 0 = flat out."
    ).tag(config=True)
    analytics_interval = Float(
        1.0, help="Seconds between analytics_update messages per instrument (0: off)."
    ).tag(config=True)
    db_path = Unicode(
        "", help="SQLite file for alert rules and history (default: <jupyter data dir>/rtstream/)."
    ).tag(config=True)
    strict_ticks = Bool(True, help="Refuse unknown fields in POSTed ticks.").tag(config=True)
    max_tick_batch = Integer(10_000, help="Most ticks accepted in one POST.").tag(config=True)
    tick_rate = Float(10.0, help="Simulated ticks per second per symbol.").tag(config=True)
    seed = Integer(
        None, allow_none=True, help="Seed of the simulated feed (None: random each start)."
    ).tag(config=True)
    volatility = Float(0.002, help="Simulated volatility per square-root second.").tag(config=True)
    history_ticks = Integer(
        300, help="Ticks of seeded history per symbol, so instruments start warm."
    ).tag(config=True)
    heartbeat_interval = Float(
        15.0, help="Seconds between connection_status heartbeats to each client."
    ).tag(config=True)
    max_message_size = Integer(64 * 1024, help="Largest client frame, in bytes.").tag(config=True)
    max_subscriptions = Integer(100, help="Subscriptions per connection.").tag(config=True)
    rate_limit = Float(50.0, help="Client messages per second per connection.").tag(config=True)
    rate_burst = Integer(100, help="Client messages a connection may burst.").tag(config=True)
    flood_tolerance = Integer(
        100, help="Frames over the rate budget before the connection is closed (1008)."
    ).tag(config=True)
    outbox_max_bytes = Integer(1 << 20, help="Bytes queued per client before it lags.").tag(
        config=True
    )
    outbox_max_messages = Integer(10_000, help="Messages queued per client.").tag(config=True)
    replay_buffer_size = Integer(
        1000, help="Messages kept per topic for resume (at least; see replay_buffer_seconds)."
    ).tag(config=True)
    replay_buffer_seconds = Float(
        60.0, help="Seconds of messages kept per topic for resume (at least)."
    ).tag(config=True)
    replay_hard_limit = Integer(
        100_000, help="Absolute cap of messages per topic replay buffer (bounds memory)."
    ).tag(config=True)
    synthetic_rate = Float(
        1000.0, help="feed='synthetic': market_data messages published per second (all topics)."
    ).tag(config=True)
    synthetic_topics = Integer(
        5, help="feed='synthetic': number of topics, symbols BENCH0..BENCH{n-1}."
    ).tag(config=True)
    websocket_compression = Bool(
        False, help="Offer permessage-deflate (costs CPU per connection; off by default)."
    ).tag(config=True)

    def initialize_settings(self) -> None:
        self.hub = Hub(
            replay_messages=self.replay_buffer_size,
            replay_seconds=self.replay_buffer_seconds,
            replay_hard_limit=self.replay_hard_limit,
            outbox_max_bytes=self.outbox_max_bytes,
            outbox_max_messages=self.outbox_max_messages,
        )
        self.instruments = InstrumentRegistry(self.symbols if self.feed == "simulated" else [])
        self.store = AlertStore(self.db_path or self._default_db_path())
        self.pipeline = Pipeline(self.hub, self.instruments, AnalyticsEngine(), self.store)
        for rule in self.store.rules():  # stored rules arm again when their symbol ticks
            self.pipeline.add_rule(rule)
            # A symbol with a stored rule stays known (e.g. one first POSTed before a
            # restart), so clients can resubscribe to its alerts before it ticks again.
            self.instruments.register(rule.symbol)
        self.limits = Limits(
            max_message_size=self.max_message_size,
            max_subscriptions=self.max_subscriptions,
            rate_limit=self.rate_limit,
            rate_burst=self.rate_burst,
            flood_tolerance=self.flood_tolerance,
        )
        self.connections: set[Connection] = set()
        self.flusher = Flusher()
        self.feed_runner: BackgroundSource | None = None
        self._timers: list[PeriodicCallback] = []
        self.version = __version__

    @staticmethod
    def _default_db_path() -> str:
        from jupyter_core.paths import jupyter_data_dir

        return os.path.join(jupyter_data_dir(), "rtstream", "rtstream.sqlite")

    def initialize_handlers(self) -> None:
        self.handlers.extend(HANDLERS)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await super()._start_jupyter_server_extension(serverapp)  # type: ignore[no-untyped-call]
        if self.feed == "simulated":
            market = SimulatedMarket(self.symbols, seed=self.seed, volatility=self.volatility)
            interval = 1.0 / self.tick_rate
            for round_ in market.history(self.history_ticks, interval, utc_now()):
                for tick in round_:
                    self.pipeline.on_tick(tick, publish=False)
            self.feed_runner = FeedRunner(
                market, self.tick_rate, self.pipeline.publish_tick, self.log
            )
        elif self.feed == "csv":
            self.feed_runner = CsvReplay(
                self.csv_path, self.replay_speed, self.pipeline.publish_tick, self.log
            )
        elif self.feed == "synthetic":  # registers BENCH0..BENCH{n-1} in self.instruments
            self.feed_runner = SyntheticPublisher(
                self.hub, self.instruments, self.synthetic_rate, self.synthetic_topics, self.log
            )
        elif self.feed != "none":
            self.log.warning("rtstream: unknown feed %r; no tick source started", self.feed)
        if self.analytics_interval > 0:
            self.pipeline.publish_analysis(self.analytics_interval)
            self._every(self.analytics_interval, self._analyse)
        if self.heartbeat_interval > 0:
            self._every(self.heartbeat_interval, self._beat)
        if self.feed_runner is not None:
            self.feed_runner.start()
        self.log.info(
            "rtstream %s: feed=%s symbols=%s epoch=%s",
            __version__,
            self.feed,
            ",".join(i.symbol for i in self.instruments),
            self.hub.epoch,
        )

    def _every(self, seconds: float, callback: Any) -> None:
        timer = PeriodicCallback(callback, seconds * 1000)
        timer.start()
        self._timers.append(timer)

    def _analyse(self) -> None:
        self.pipeline.publish_analysis(self.analytics_interval)

    def _beat(self) -> None:
        for connection in list(self.connections):
            connection.session.heartbeat()

    async def stop_extension(self) -> None:
        """Stop the feed, then close every client with 1001 and a spread ``retry_after``."""
        for timer in self._timers:
            timer.stop()
        if self.feed_runner is not None:
            await self.feed_runner.stop()  # never raises: a dead task is logged
        connections = list(self.connections)
        window = min(30.0, 1.0 + 0.05 * len(connections))
        for connection in connections:
            retry_after = 1.0 + random.uniform(0.0, window)
            connection.shutdown(CloseCode.GOING_AWAY, close_reason("SERVER_SHUTDOWN", retry_after))
        if connections:
            await asyncio.sleep(0.1)  # let the close frames reach the sockets
        self.store.close()

    def feed_status(self) -> dict[str, Any]:
        runner = self.feed_runner
        return {
            "kind": self.feed,
            "running": bool(runner and runner.running),
            "alerts_fired": self.pipeline.alerts,
            "alerts_dropped": self.pipeline.alerts_dropped,
            "symbols": [i.symbol for i in self.instruments],
            "tick_rate": self.tick_rate,
            "ticks": self.pipeline.ticks,
        }
