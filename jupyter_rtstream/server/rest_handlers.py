"""The REST endpoints under ``rtstream/api/``: thin shells over the pure core.

Bodies are validated once, at this boundary, by the pydantic models of
:mod:`jupyter_rtstream.core.rest`; the status document is the hub's
:meth:`~jupyter_rtstream.core.hub.Hub.status` plus each session's
:meth:`~jupyter_rtstream.core.session.ServerSession.summary`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from ..core.codec import summarize
from ..core.errors import ErrorCode
from ..core.messages import (
    PROTOCOL_VERSIONS,
    format_timestamp,
    topic_for,
    utc_now,
)
from ..core.rest import RuleIn, TickBatch, TickBatchLenient
from ..core.vocabulary import normalize_symbol
from ..schema import document as schema_document
from .feed import Tick
from .runtime import AUTH_RESOURCE, RtstreamHandlerMixin, user_key

_T = TypeVar("_T")

#: Largest ``alert_id`` SQLite can hold (``since`` beyond it is out of range).
MAX_ALERT_ID = 2**63 - 1
MAX_ALERTS_LIMIT = 10_000
MAX_HISTORY_LIMIT = 10_000
#: ``kind`` values of the history endpoint (the subscription types that have a replay
#: buffer; alerts have their own history, ``GET rtstream/api/alerts``).
HISTORY_KINDS = ("market_data", "technical_indicators", "analytics")


class _StoreUnavailable(Exception):
    """The store call failed and the handler already answered 503."""


class _ApiHandler(RtstreamHandlerMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        # allow_nan=False: Infinity/NaN are not JSON; extreme inputs give null instead.
        self.finish(json.dumps(_finite(body), default=_json_default, allow_nan=False))

    def write_error_json(self, status: int, code: str, message: str) -> None:
        self.write_json({"error_code": code, "error_message": message}, status)

    def int_argument(self, name: str, default: int, low: int, high: int) -> int | None:
        """Query argument ``name`` as an integer in ``[low, high]``, or None after a 400."""
        raw = self.get_argument(name, None)
        if raw is None:
            return default
        try:
            value = int(raw) if len(raw) <= 40 else None
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            self.write_error_json(
                400, "INVALID_MESSAGE", f"{name!r} must be an integer in [{low}, {high}]"
            )
            return None
        return value

    async def store_call(self, fn: Callable[..., _T], /, *args: Any, **kwargs: Any) -> _T:
        """Run a store method on the store thread (never on the event loop); a database
        that stays locked or fails answers 503 (raises :class:`_StoreUnavailable`)."""
        try:
            return await self.app.store_worker.call(fn, *args, **kwargs)
        except sqlite3.Error as exc:
            self.write_error_json(
                503, ErrorCode.INTERNAL_ERROR.value, f"alert store unavailable ({exc}); retry"
            )
            raise _StoreUnavailable from exc


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats (an overflowing indicator, say) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_timestamp(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


class StatusHandler(_ApiHandler):
    """``GET rtstream/api/status``: versions, clients, topics, feed and counters.

    ``clients`` lists the requesting user's own connections; other users' (a shared
    server under JupyterHub) appear only as the ``other_clients`` count."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        app = self.app
        hub = app.hub.status()
        queues: dict[str, dict[str, Any]] = hub["clients"]
        me = user_key(self)
        clients = []
        others = 0
        for connection in list(app.connections):
            if connection.user != me:  # other users' connections: a count, no details
                others += 1
                continue
            summary = connection.session.summary()
            queue = queues.get(summary["client_id"], {})
            clients.append(
                {
                    "client_id": summary["client_id"],
                    "connected_at": summary["connected_at"],
                    **queue,  # subscriptions, conflated, queued_bytes, delivered
                    "received": summary["received"],
                    "rejected": summary["rejected"],
                }
            )
        self.write_json(
            {
                "version": app.version,
                "protocol_versions": list(PROTOCOL_VERSIONS),
                "epoch": hub["epoch"],
                "clients": clients,
                "other_clients": others,
                "topics": hub["topics"],
                "feed": app.feed_status(),
                "counters": hub["counters"],
                "server_closes": {str(code): n for code, n in app.server_closes.items()},
            }
        )


class SchemaHandler(_ApiHandler):
    """``GET rtstream/api/schema``: the protocol's JSON Schema (draft 2020-12)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(schema_document())


class InstrumentsHandler(_ApiHandler):
    """``GET rtstream/api/instruments``: id, symbol and last price of every instrument."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"instruments": [i.as_json() for i in self.app.instruments]})


class InstrumentHistoryHandler(_ApiHandler):
    """``GET rtstream/api/instruments/{symbol}/history?kind=&since=&limit=``: what the hub
    still holds of the topic (seeded history, then the replay buffer), oldest first.

    ``since`` is a seq (items with a greater one) or an RFC 3339 time (items published at or
    after it); ``limit`` in [1, 10,000]. Page with ``since=<last seq of the page>`` until a
    page comes back short. The messages are the buffered wire texts, sent as they are.
    """

    @web.authenticated
    @authorized
    async def get(self, symbol: str) -> None:
        app = self.app
        kind = self.get_argument("kind", "market_data")
        if kind not in HISTORY_KINDS:
            self.write_error_json(
                400, "INVALID_MESSAGE", f"'kind' must be one of {', '.join(HISTORY_KINDS)}"
            )
            return
        limit = self.int_argument("limit", 1000, 1, MAX_HISTORY_LIMIT)
        if limit is None:
            return
        since_seq, since_time = None, None
        raw_since = self.get_argument("since", None)
        if raw_since is not None:
            if raw_since.strip().isdigit():
                since_seq = self.int_argument("since", 0, 0, MAX_ALERT_ID)
                if since_seq is None:
                    return
            else:
                since_time = _parse_time(raw_since)
                if since_time is None:
                    self.write_error_json(
                        400,
                        "INVALID_MESSAGE",
                        "'since' must be a seq in [0, 2^63-1] or an RFC 3339 time",
                    )
                    return
        instrument = app.instruments.get(normalize_symbol(symbol))
        if instrument is None:
            self.write_error_json(404, "UNKNOWN_INSTRUMENT", f"unknown symbol {symbol!r}")
            return
        app.first_use(instrument.symbol)  # its seeded history, recorded on first use
        topic = topic_for(kind, instrument.symbol)
        texts = app.hub.history(topic, since_seq=since_seq, since_time=since_time, limit=limit)
        head = json.dumps(
            {
                "symbol": instrument.symbol,
                "kind": kind,
                "topic": topic,
                "epoch": app.hub.epoch,
                "seq": app.hub.last_seq(topic),
            }
        )
        # The buffered texts are already valid JSON messages: spliced in, never re-encoded.
        self.set_header("Content-Type", "application/json")
        self.finish(head[:-1] + ', "messages": [' + ",".join(texts) + "]}")


def _parse_time(raw: str) -> datetime | None:
    """An RFC 3339 time (``Z`` or an offset; naive means UTC), or None."""
    if len(raw) > 64:
        return None
    try:
        value = datetime.fromisoformat(raw.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class InstrumentSnapshotHandler(_ApiHandler):
    """``GET rtstream/api/instruments/{symbol}/snapshot``: latest price, indicators, analysis."""

    @web.authenticated
    @authorized
    async def get(self, symbol: str) -> None:
        snapshot = self.app.snapshot(symbol)
        if snapshot is None:
            self.write_error_json(404, "UNKNOWN_INSTRUMENT", f"unknown symbol {symbol!r}")
            return
        self.write_json(snapshot)


# --------------------------------------------------------------------------- alerts and ticks

MAX_BODY_BYTES = 8 * 1024 * 1024
_Body = TypeVar("_Body", bound=BaseModel)


class _JsonBodyHandler(_ApiHandler):
    def parse_body(self, model: type[_Body]) -> _Body | None:
        """The body validated as ``model`` (one pydantic pass over the raw bytes), or None
        after answering 413 (oversize), 400 ``INVALID_JSON`` or 400 ``INVALID_MESSAGE``."""
        body = self.request.body or b""
        if len(body) > MAX_BODY_BYTES:
            self.write_error_json(
                413, "MESSAGE_TOO_LARGE", f"request body over {MAX_BODY_BYTES} bytes"
            )
            return None
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            if any(err["type"] == "json_invalid" for err in exc.errors()):
                self.write_error_json(400, "INVALID_JSON", f"body is not valid JSON: {exc}")
            else:
                self.write_error_json(400, "INVALID_MESSAGE", summarize(exc))
            return None


class AlertRulesHandler(_JsonBodyHandler):
    """``GET/POST rtstream/api/alerts/rules``: list and create alert rules (SQLite)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        store = self.app.store_worker.store
        try:
            rules = await self.store_call(store.rules)
        except _StoreUnavailable:
            return
        self.write_json({"rules": [dataclasses.asdict(r) for r in rules]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.parse_body(RuleIn)
        if spec is None:
            return
        app = self.app
        if spec.symbol not in app.instruments:
            self.write_error_json(
                400, "UNKNOWN_INSTRUMENT", f"unknown symbol {spec.symbol!r}: no such instrument"
            )
            return
        pipeline = app.pipeline
        if pipeline.engine.rule_count() + pipeline.rules_reserved >= app.max_rules:
            self.write_error_json(
                400, ErrorCode.RULE_LIMIT.value, f"at most {app.max_rules} alert rules"
            )
            return
        # RuleIn validated the whole rule in one pass; the engine's own check cannot fail.
        # The slot is reserved while the store thread writes, so concurrent POSTs cannot
        # overshoot max_rules.
        pipeline.rules_reserved += 1
        try:
            rule = await self.store_call(app.store_worker.store.add_rule, spec.model_dump())
        except _StoreUnavailable:
            return
        finally:
            pipeline.rules_reserved -= 1
        pipeline.add_rule(rule)
        self.write_json(dataclasses.asdict(rule), status=201)


class AlertRuleHandler(_ApiHandler):
    """``DELETE rtstream/api/alerts/rules/{rule_id}``."""

    @web.authenticated
    @authorized
    async def delete(self, rule_id: str) -> None:
        try:
            rid = int(rule_id)
            if not 0 < rid < 2**63:
                raise ValueError(rule_id)
        except ValueError:
            self.write_error_json(404, "INVALID_MESSAGE", f"no rule {rule_id!r}")
            return
        try:
            deleted = await self.store_call(self.app.store_worker.store.delete_rule, rid)
        except _StoreUnavailable:
            return
        if not deleted:
            self.write_error_json(404, "INVALID_MESSAGE", f"no rule {rid}")
            return
        self.app.pipeline.remove_rule(rid)
        self.set_status(204)
        self.finish()


class AlertsHandler(_ApiHandler):
    """``GET rtstream/api/alerts?since=<alert_id>[&symbol=][&limit=]``: history, oldest first."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        since = self.int_argument("since", 0, 0, MAX_ALERT_ID)
        limit = self.int_argument("limit", 1000, 1, MAX_ALERTS_LIMIT)
        if since is None or limit is None:
            return
        raw_symbol = self.get_argument("symbol", None)
        symbol = None
        if raw_symbol is not None:
            symbol = normalize_symbol(raw_symbol)
            if not 0 < len(symbol) <= 16:
                self.write_error_json(400, "INVALID_MESSAGE", "'symbol' must be 1-16 characters")
                return
        store = self.app.store_worker.store
        try:
            alerts = await self.store_call(store.alerts_since, since, limit, symbol)
        except _StoreUnavailable:
            return
        self.write_json({"alerts": alerts})


class TicksHandler(_JsonBodyHandler):
    """``POST rtstream/api/ticks``: ingest a batch of ticks, all or nothing."""

    @web.authenticated
    @authorized
    async def post(self) -> None:
        app = self.app
        model: type[TickBatch] = TickBatch if app.strict_ticks else TickBatchLenient
        batch = self.parse_body(model)
        if batch is None:
            return
        if len(batch.ticks) > app.max_tick_batch:
            self.write_error_json(
                400, "MESSAGE_TOO_LARGE", f"at most {app.max_tick_batch} ticks per request"
            )
            return
        now = utc_now()
        latest = now + timedelta(seconds=app.max_clock_skew)
        for tick_in in batch.ticks:
            if tick_in.timestamp is not None and tick_in.timestamp > latest:
                self.write_error_json(
                    400,
                    ErrorCode.INVALID_TICK.value,
                    f"tick for {tick_in.symbol} dated {format_timestamp(tick_in.timestamp)}, "
                    f"more than {app.max_clock_skew:g} s ahead of the server clock",
                )
                return
        shared = app.read_only_symbols()
        refused = sorted({t.symbol for t in batch.ticks if t.symbol in shared})
        if refused:
            self.write_error_json(
                409,
                ErrorCode.READ_ONLY_SYMBOL.value,
                f"{', '.join(refused)} belong(s) to the shared feed (read-only here); "
                "nothing applied",
            )
            return
        new = {t.symbol for t in batch.ticks if t.symbol not in app.instruments}
        if len(app.instruments) + len(new) > app.max_symbols:
            self.write_error_json(
                400,
                ErrorCode.SYMBOL_LIMIT.value,
                f"{len(new)} new symbol(s) would exceed max_symbols={app.max_symbols} "
                f"({len(app.instruments)} known); nothing applied",
            )
            return
        ticks = [Tick(t.symbol, t.price, t.volume, t.timestamp or now) for t in batch.ticks]
        for tick in ticks:  # validated above, so the engine cannot refuse one midway
            app.pipeline.on_tick(tick)
        self.write_json({"accepted": len(ticks)})
