"""Every configurable trait of ``RtstreamApp``, typed and ranged.

A bad value fails when the configuration is loaded, with a ``TraitError`` that names the
trait (``RtstreamApp.tick_rate must be > 0 ...``), instead of a ZeroDivisionError (or a
silently unbounded server) later. The bounds of issue 11 live here too: ``max_symbols``,
``max_rules``, ``max_clock_skew``, ``max_connections_per_user``, ``symbol_ttl``,
``alert_retention_days`` and ``alert_max_rows``.
"""

from __future__ import annotations

import math
from typing import Any

from traitlets import Bool, Enum, Float, HasTraits, Integer, List, TraitError, Unicode, validate

from .feed import DEFAULT_SYMBOLS

#: Tick sources ``feed`` accepts.
FEEDS = ("simulated", "csv", "synthetic", "none")

#: ``trait: (lower bound, inclusive)``; every value must also be finite.
_RANGES: dict[str, tuple[float, bool]] = {
    "replay_speed": (0.0, True),
    "analytics_interval": (0.0, True),
    "max_tick_batch": (1, True),
    "tick_rate": (0.0, False),
    "volatility": (0.0, True),
    "history_ticks": (0, True),
    "history_interval": (0.0, True),
    "startup_warmup_ticks": (0, True),
    "heartbeat_interval": (0.0, True),
    "max_message_size": (256, True),
    "max_subscriptions": (1, True),
    "rate_limit": (0.0, False),
    "rate_burst": (1, True),
    "flood_tolerance": (0, True),
    "outbox_max_bytes": (1024, True),
    "outbox_max_messages": (4, True),
    "replay_buffer_size": (1, True),
    "replay_buffer_seconds": (0.0, True),
    "replay_hard_limit": (1, True),
    "synthetic_rate": (0.0, False),
    "synthetic_topics": (1, True),
    "max_symbols": (1, True),
    "max_rules": (0, True),
    "max_clock_skew": (0.0, True),
    "max_connections_per_user": (1, True),
    "symbol_ttl": (0.0, False),
    "alert_retention_days": (0.0, False),
    "alert_max_rows": (1, True),
    "housekeeping_interval": (0.0, False),
}


class RtstreamSettings(HasTraits):
    """The traits; ``RtstreamApp`` inherits them (configure as ``c.RtstreamApp.<trait>``)."""

    symbols = List(
        Unicode(), default_value=list(DEFAULT_SYMBOLS), help="Symbols of the simulated feed."
    ).tag(config=True)
    feed = Enum(
        FEEDS,
        default_value="simulated",
        help="Tick source: 'simulated' (embedded GBM feed), 'csv' (replay csv_path), "
        "'synthetic' (benchmark publisher: synthetic_rate msg/s over synthetic_topics) or 'none'.",
    ).tag(config=True)
    bus = Enum(
        ("local", "redis"),
        default_value="local",
        help="'local': this server runs its own feed (embedded). 'redis': it runs none and "
        "relays the shared feed service (`jupyter rtstream feed`) from redis_url.",
    ).tag(config=True)
    redis_url = Unicode(
        "redis://127.0.0.1:6379/0", help="Redis of the shared feed when bus='redis'."
    ).tag(config=True)
    csv_path = Unicode("", help="CSV file (timestamp,symbol,price,volume) for feed='csv'.").tag(
        config=True
    )
    replay_speed = Float(
        1.0, help="CSV replay speed: 1 = recorded pace, 10 = ten times faster, 0 = flat out."
    ).tag(config=True)
    analytics_interval = Float(
        1.0, help="Seconds between analytics_update messages per active instrument (0: off)."
    ).tag(config=True)
    db_path = Unicode(
        "",
        help="SQLite file for alert rules and history. Default: one file per server, "
        "<jupyter data dir>/rtstream/rtstream-<server>.sqlite (<server> from "
        "JUPYTERHUB_SERVICE_PREFIX under JupyterHub, else port-<port>). Setting the same "
        "path on several servers shares rules and history on purpose (safe: WAL, ordered "
        "writes, busy timeout).",
    ).tag(config=True)
    strict_ticks = Bool(True, help="Refuse unknown fields in POSTed ticks.").tag(config=True)
    max_tick_batch = Integer(10_000, help="Most ticks accepted in one POST.").tag(config=True)
    tick_rate = Float(10.0, help="Simulated ticks per second per symbol.").tag(config=True)
    seed = Integer(
        None, allow_none=True, help="Seed of the simulated feed (None: random each start)."
    ).tag(config=True)
    volatility = Float(0.002, help="Simulated volatility per square-root second.").tag(config=True)
    history_ticks = Integer(
        300,
        help="Ticks of seeded history per symbol, so instruments start warm; kept as each "
        "topic's seeded history for GET rtstream/api/instruments/{symbol}/history.",
    ).tag(config=True)
    history_interval = Float(
        0.0,
        help="Seconds between two rounds of seeded history (0: the live spacing, "
        "1/tick_rate); e.g. history_ticks=3600 with history_interval=1 seeds an hour.",
    ).tag(config=True)
    startup_warmup_ticks = Integer(
        20_000,
        help="Seeded-history ticks applied before the server serves (symbol by symbol, in "
        "order); the rest of the universe warms up in the background, so the start takes "
        "the same time for 5 or 10,000 symbols. A symbol ticks once its history is applied.",
    ).tag(config=True)
    heartbeat_interval = Float(
        15.0, help="Seconds between connection_status heartbeats to each client (0: off)."
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
    shutdown_jitter = Bool(
        True,
        help="Spread clients' reconnects after a shutdown: each close carries a random "
        "retry_after (1 s + up to 0.05 s per client, at most 31 s). False sends every client "
        "retry_after=1 s (the chaos suite's no-jitter control of a reconnect storm).",
    ).tag(config=True)
    websocket_compression = Bool(
        False, help="Offer permessage-deflate (costs CPU per connection; off by default)."
    ).tag(config=True)
    # ------------------------------------------------------------------ bounds (issue 11)
    max_symbols = Integer(
        1000, help="Instruments a server knows; a tick batch beyond it gets 400 SYMBOL_LIMIT."
    ).tag(config=True)
    max_rules = Integer(500, help="Alert rules; one more gets 400 RULE_LIMIT.").tag(config=True)
    max_clock_skew = Float(
        300.0, help="Seconds a POSTed tick may be dated in the future (else 400 INVALID_TICK)."
    ).tag(config=True)
    max_connections_per_user = Integer(
        20, help="Open WebSockets per user; one more is closed 1008 CONNECTION_LIMIT."
    ).tag(config=True)
    symbol_ttl = Float(
        3600.0,
        help="Seconds without a tick after which a symbol is idle: no analytics_update, and "
        "its replay buffers are released once it has no subscribers (it stays known).",
    ).tag(config=True)
    alert_retention_days = Float(
        30.0, help="Days of alert history kept (pruned in the background)."
    ).tag(config=True)
    alert_max_rows = Integer(
        100_000, help="Most alerts kept in the history (the oldest are pruned first)."
    ).tag(config=True)
    housekeeping_interval = Float(
        60.0, help="Seconds between background trims (replay buffers, idle symbols, history)."
    ).tag(config=True)

    @validate(*_RANGES)
    def _in_range(self, proposal: Any) -> Any:
        name = proposal["trait"].name
        value = proposal["value"]
        low, inclusive = _RANGES[name]
        ok = math.isfinite(value) and (value >= low if inclusive else value > low)
        if not ok:
            op = ">=" if inclusive else ">"
            raise TraitError(f"RtstreamApp.{name} must be {op} {low:g} and finite, got {value!r}")
        return value
