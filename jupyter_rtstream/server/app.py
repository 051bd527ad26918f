"""The ``rtstream`` Jupyter server extension: configuration, lifecycle, shared runtime."""

from __future__ import annotations

import asyncio
import gc
import os
import random
import re
from collections import Counter
from typing import Any

from jupyter_server.extension.application import ExtensionApp
from redis.exceptions import RedisError
from tornado.ioloop import PeriodicCallback
from traitlets import TraitError

from .._version import __version__
from ..analytics import AnalyticsEngine
from ..core.errors import CloseCode, close_reason
from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.messages import utc_now
from ..core.session import Limits
from ..core.vocabulary import split_topic
from .bus import RedisRelay
from .bus_snapshot import snapshot_from_stream
from .feed import BackgroundSource, FeedRunner, SimulatedMarket
from .flush import Flusher
from .handlers import HANDLERS
from .housekeeping import Housekeeping
from .keepalive import KeepAlive
from .pipeline import Pipeline
from .replay import CsvReplay
from .runtime import Connection
from .settings import RtstreamSettings
from .store import AlertStore
from .store_worker import StoreWorker
from .synthetic import SyntheticPublisher
from .warmup import Warmup


class RtstreamApp(RtstreamSettings, ExtensionApp):
    """Streams typed market data, indicators and alerts over ``{base_url}rtstream/ws``.

    Configure with ``c.RtstreamApp.<trait>`` in ``jupyter_server_config.py`` or in the
    extension's own ``jupyter_rtstream_config.py``; the traits, with their types and
    ranges, are in :mod:`.settings`.
    """

    name = "rtstream"
    description = __doc__ or ""
    load_other_extensions = True

    _config_error: Exception | None = None

    def _link_jupyter_server_extension(self, serverapp: Any) -> None:
        # jupyter_server logs a failed link and then loads the extension anyway, with the
        # bad trait silently back at its default: remember the error, refuse to load.
        try:
            super()._link_jupyter_server_extension(serverapp)
        except TraitError as exc:
            self._config_error = exc
            raise

    def initialize_settings(self) -> None:
        if self._config_error is not None:
            self.log.error("rtstream: not loaded, invalid configuration: %s", self._config_error)
            raise self._config_error
        if self.feed == "csv" and not self.csv_path:
            raise TraitError("RtstreamApp.csv_path is required when RtstreamApp.feed is 'csv'")
        self.hub = Hub(
            replay_messages=self.replay_buffer_size,
            replay_seconds=self.replay_buffer_seconds,
            replay_hard_limit=self.replay_hard_limit,
            outbox_max_bytes=self.outbox_max_bytes,
            outbox_max_messages=self.outbox_max_messages,
        )
        embedded = self.bus == "local" and self.feed == "simulated"
        self.instruments = InstrumentRegistry(self.symbols if embedded else [])
        # Opened and read here, before the server serves; afterwards only through the worker.
        self.store = AlertStore(self.db_path or self._default_db_path())
        stored_rules = self.store.rules()
        self.store_worker = StoreWorker(self.store)
        self.pipeline = Pipeline(
            self.hub,
            self.instruments,
            AnalyticsEngine(),
            self.store_worker,
            last_alert_id=self.store.last_alert_id(),
            symbol_ttl=self.symbol_ttl,
        )
        for rule in stored_rules:  # stored rules arm again when their symbol ticks
            try:
                self.pipeline.add_rule(rule)
                # A symbol with a stored rule stays known (e.g. one first POSTed before a
                # restart), so clients can resubscribe to its alerts before it ticks again.
                self.instruments.register(rule.symbol)
            except Exception as exc:  # a rule from an older version must not stop loading
                self.pipeline.remove_rule(rule.rule_id)
                self.log.warning(
                    "rtstream: stored alert rule %s no longer validates (%s); skipped",
                    rule.rule_id,
                    exc,
                )
        self.housekeeping = Housekeeping(
            self.hub,
            self.pipeline,
            self.store_worker,
            retention_seconds=self.alert_retention_days * 86_400.0,
            max_rows=self.alert_max_rows,
        )
        self.limits = Limits(
            max_message_size=self.max_message_size,
            max_subscriptions=self.max_subscriptions,
            rate_limit=self.rate_limit,
            rate_burst=self.rate_burst,
            flood_tolerance=self.flood_tolerance,
        )
        self.connections: set[Connection] = set()
        # Started by the first connection (its interval is the handler's ping_interval).
        self.keepalive = KeepAlive(self.connections)
        pipeline = self.pipeline
        self.published_alert_id = lambda: pipeline.committer.last_alert_id
        self.server_closes: Counter[int] = Counter()
        self.flusher = Flusher()
        self.feed_runner: BackgroundSource | None = None
        self.warmup: Warmup | None = None
        self.hub.on_watch = self._on_watch
        self.relay: RedisRelay | None = None
        self._timers: list[PeriodicCallback] = []
        self.version = __version__

    def _default_db_path(self) -> str:
        """One file per server: named servers on a shared home (JupyterHub) or two servers
        on different ports must not share rules and history by accident."""
        from jupyter_core.paths import jupyter_data_dir

        prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "").strip("/")
        if prefix:
            key = "hub-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", prefix)
        else:
            port = int(getattr(self.serverapp, "port", 0) or 0)
            # Port 0 (a random port, not known yet when extensions load) would make every
            # such server share one file: key those by process instead.
            key = f"port-{port}" if port else f"pid-{os.getpid()}"
        path = os.path.join(jupyter_data_dir(), "rtstream", f"rtstream-{key}.sqlite")
        self.log.info("rtstream: alert rules and history in %s (set RtstreamApp.db_path)", path)
        return path

    def initialize_handlers(self) -> None:
        self.handlers.extend(HANDLERS)

    async def _start_jupyter_server_extension(self, serverapp: Any) -> None:
        await super()._start_jupyter_server_extension(serverapp)  # type: ignore[no-untyped-call]
        if self.bus == "redis":
            await self._start_relay()
        elif self.feed == "simulated":
            market = SimulatedMarket(
                self.symbols, seed=self.seed, volatility=self.volatility, live=False
            )
            # The seeded history warms the analytics (and becomes each topic's seeded
            # history, GET rtstream/api/instruments/{symbol}/history, on first use), one
            # tick per history_interval (default: the live tick spacing) up to now: at
            # most startup_warmup_ticks of it before serving, the rest in the background.
            interval = self.history_interval or 1.0 / self.tick_rate
            self.warmup = Warmup(self.pipeline, market, self.history_ticks, interval, utc_now())
            self.pipeline.warmup = self.warmup
            self.warmup.run_for(self.startup_warmup_ticks)
            hub = self.hub
            self.feed_runner = FeedRunner(
                market,
                self.tick_rate,
                self.pipeline.publish_tick,
                self.log,
                published=lambda: hub.published,
            )
        elif self.feed == "csv":
            self.feed_runner = CsvReplay(
                self.csv_path, self.replay_speed, self.pipeline.publish_tick, self.log
            )
        elif self.feed == "synthetic":  # registers BENCH0..BENCH{n-1} in self.instruments
            self.feed_runner = SyntheticPublisher(
                self.hub, self.instruments, self.synthetic_rate, self.synthetic_topics, self.log
            )
        if self.analytics_interval > 0 and self.relay is None:
            self.pipeline.publish_analysis(self.analytics_interval)
            self._every(self.analytics_interval, self._analyse)
        if self.heartbeat_interval > 0:
            self._every(self.heartbeat_interval, self._beat)
        self._every(self.housekeeping_interval, self.housekeeping.run)
        if self.feed_runner is not None:
            self.feed_runner.start()
        # What the server and its extensions built at start-up lives as long as the process:
        # out of the cyclic GC's reach, a full collection (which streaming triggers now and
        # then) no longer walks the whole jupyter_server heap, a pause of tens of ms that
        # showed as the p99 of every client's latency.
        _freeze_startup_heap()
        if self.warmup is not None:
            self.warmup.start()
        symbols = [i.symbol for i in self.instruments]
        self.log.info(
            "rtstream %s: bus=%s feed=%s symbols=%s epoch=%s",
            __version__,
            self.bus,
            self.feed,
            ",".join(symbols) if len(symbols) <= 20 else f"{len(symbols)} ({symbols[0]}, ...)",
            self.hub.epoch,
        )

    async def _start_relay(self) -> None:
        """bus='redis': no feed here; one reader task relays the shared streams."""
        hub = self.hub
        self.relay = relay = RedisRelay(
            self.redis_url,
            hub,
            self.instruments,
            self.pipeline.on_relayed,
            warm=self.replay_buffer_size,
            on_state=self._feed_state_changed,
            on_gap=lambda topic: hub.close_subscribers(
                topic, CloseCode.TRY_AGAIN_LATER, close_reason("FEED_GAP", retry_after=0.5)
            ),
            on_epoch=lambda epoch: self._close_all(CloseCode.GOING_AWAY, "FEED_RESTART"),
        )
        try:  # before serving, so the shared symbols are known to the first client
            await asyncio.wait_for(relay.sync(), timeout=3.0)
            relay.state = hub.feed_state = "ok"
        except (asyncio.TimeoutError, RedisError, OSError) as exc:
            hub.feed_state = "degraded"
            self.log.warning("rtstream: Redis bus %s not ready (%s)", self.redis_url, exc)
        relay.start()

    def _feed_state_changed(self, state: str) -> None:
        self.log.info("rtstream: shared feed %s", state)
        for connection in list(self.connections):  # tell every client now, not at the beat
            connection.session.heartbeat()

    def _close_all(self, code: int, reason: str) -> None:
        for connection in list(self.connections):
            retry_after = 0.5 + random.uniform(0.0, 2.0)
            connection.shutdown(code, close_reason(reason, retry_after))

    def _on_watch(self, name: str) -> None:
        """A topic's first subscriber: its current state, built on demand (not for the
        shared feed's symbols: the feed service builds those)."""
        if split_topic(name)[1] not in self.read_only_symbols():
            self.pipeline.on_watch(name)

    def first_use(self, symbol: str) -> None:
        """A request needs ``symbol``'s seeded history (the history API)."""
        if symbol not in self.read_only_symbols():
            self.pipeline.prepare(symbol)

    def read_only_symbols(self) -> frozenset[str]:
        """Symbols of the shared feed: POSTed ticks for them get 409 READ_ONLY_SYMBOL."""
        return self.relay.shared if self.relay is not None else frozenset()

    def snapshot(self, symbol: str) -> dict[str, Any] | None:
        if self.relay is not None:
            found = snapshot_from_stream(self.hub, self.instruments, symbol)
            if found is not None:
                return found
        return self.pipeline.snapshot(symbol)

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
        self.keepalive.stop()
        if self.warmup is not None:
            await self.warmup.stop()
        if self.feed_runner is not None:
            await self.feed_runner.stop()  # never raises: a dead task is logged
        if self.relay is not None:
            await self.relay.stop()
        connections = list(self.connections)
        window = min(30.0, 1.0 + 0.05 * len(connections))
        for connection in connections:
            retry_after = 1.0 + (random.uniform(0.0, window) if self.shutdown_jitter else 0.0)
            connection.shutdown(CloseCode.GOING_AWAY, close_reason("SERVER_SHUTDOWN", retry_after))
        if connections:
            await asyncio.sleep(0.1)  # let the close frames reach the sockets
        self.housekeeping.cancel()
        await self.pipeline.committer.flush(timeout=5.0)
        self.pipeline.committer.cancel()
        await asyncio.get_running_loop().run_in_executor(None, self.store_worker.close)

    def feed_status(self) -> dict[str, Any]:
        runner = self.feed_runner
        relay = self.relay.status() if self.relay is not None else {"state": "ok", "bus": "local"}
        return {
            **relay,
            "kind": self.feed if self.relay is None else "redis",
            "running": (
                bool(runner and runner.running) if self.relay is None else relay["state"] == "ok"
            ),
            "alerts_fired": self.pipeline.alerts,
            "alerts_dropped": self.pipeline.alerts_dropped,
            "alerts_pending": self.pipeline.committer.pending,
            "last_alert_id": self.pipeline.committer.last_alert_id,
            "active_symbols": len(self.pipeline.active_symbols()),
            "warming": self.warmup.pending if self.warmup is not None else 0,
            "symbols": [i.symbol for i in self.instruments],
            "tick_rate": self.tick_rate,
            "ticks": self.pipeline.ticks,
        }


_heap_frozen = False


def _freeze_startup_heap() -> None:
    """``gc.collect(); gc.freeze()`` once per process: another app started in the same
    process (tests) would freeze its predecessors' garbage for good."""
    global _heap_frozen
    if not _heap_frozen:
        _heap_frozen = True
        gc.collect()
        gc.freeze()
