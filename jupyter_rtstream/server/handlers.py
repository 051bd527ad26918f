"""Tornado handlers: thin shells around the pure core.

The WebSocket handler owns no protocol logic: it feeds frames to a
:class:`~jupyter_rtstream.core.session.ServerSession`, and a per-connection flush task writes
whatever the session's outbox holds, as pre-built frame bytes, awaiting the socket so that a
slow client backs up into its own bounded outbox (and nobody else's).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import uuid
from datetime import datetime
from typing import Any, TypeVar, cast

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.extension.handler import ExtensionHandlerMixin
from pydantic import BaseModel, ValidationError
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.codec import summarize
from ..core.errors import CloseCode, close_reason
from ..core.messages import (
    PROTOCOL_VERSIONS,
    SUBPROTOCOL,
    SUBPROTOCOL_PREFIX,
    format_timestamp,
    json_schema,
    utc_now,
)
from ..core.rest import RuleIn, TickBatch, TickBatchLenient
from ..core.session import ServerSession
from .app import RtstreamApp
from .feed import Tick
from .wire import wire_bytes

AUTH_RESOURCE = "rtstream"


class _RtstreamMixin(ExtensionHandlerMixin):
    @property
    def app(self) -> RtstreamApp:
        return cast(RtstreamApp, self.extensionapp)


class StreamWebSocketHandler(WebSocketMixin, WebSocketHandler, _RtstreamMixin, JupyterHandler):
    """``rtstream/ws``: the typed protocol over one WebSocket per client."""

    auth_resource = AUTH_RESOURCE
    session: ServerSession

    def set_default_headers(self) -> None:
        """No CSP/cache headers on an upgrade (as jupyter_server's kernel socket)."""

    def get_compression_options(self) -> dict[str, Any] | None:
        return {} if self.app.websocket_compression else None

    @property
    def max_message_size(self) -> int:
        # The session answers oversize frames with a JSON close reason; Tornado's own limit
        # sits above it and only stops absurd frames before they are buffered whole.
        return int(self.app.max_message_size) * 4

    def select_subprotocol(self, subprotocols: list[str]) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in subprotocols else None

    @ws_authenticated
    @authorized
    async def get(self, *args: Any, **kwargs: Any) -> None:
        offered = [
            p.strip()
            for p in self.request.headers.get("Sec-WebSocket-Protocol", "").split(",")
            if p.strip()
        ]
        ours = [p for p in offered if p.startswith(SUBPROTOCOL_PREFIX)]
        if ours and SUBPROTOCOL not in ours:
            raise web.HTTPError(
                400, f"unsupported rtstream subprotocol(s) {ours}; this server speaks {SUBPROTOCOL}"
            )
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        super().open(*args, **kwargs)
        self.set_nodelay(True)
        self._closing = False
        self._pending: asyncio.Future[None] | None = None
        app = self.app
        self.session = ServerSession(
            app.hub,
            app.instruments,
            uuid.uuid4().hex,
            limits=app.limits,
            waker=self._on_outbox,
            heartbeat_interval=app.heartbeat_interval,
            server_version=app.version,
        )
        app.connections.add(self)
        self.session.opened()
        self.log.debug("rtstream: client %s connected", self.session.client_id)

    def on_message(self, message: str | bytes) -> None:
        if isinstance(message, bytes):
            self.session.receive_binary()
        else:
            self.session.receive_text(message)

    def on_close(self) -> None:
        self._closing = True
        # Tornado also calls this when the peer leaves before open() ran (no session yet).
        session: ServerSession | None = getattr(self, "session", None)
        if session is None:
            return
        self.app.connections.discard(self)
        session.closed()
        self.log.debug("rtstream: client %s disconnected (%s)", session.client_id, self.close_code)

    def shutdown(self, code: int, reason: str) -> None:
        """Close from the server side (used on server shutdown)."""
        self.session.outbox.request_close(code, reason)

    def _on_outbox(self) -> None:
        """The session's waker: its outbox has frames, or a close was requested. Flushed
        in the next loop iteration, together with every other woken connection."""
        self.app.flusher.wake(self)

    def _flush(self) -> None:
        """Write the whole outbox now, unless a write to this socket is still pending: then
        the outbox keeps filling (and conflating) until that write completes."""
        if self._closing:
            return
        try:
            self._flush_now()
        except Exception:  # never leave a connection that can no longer be woken
            self.log.exception("rtstream: flushing client %s failed", self.session.client_id)
            self._closing = True
            self.close(CloseCode.INTERNAL_ERROR, close_reason("INTERNAL_ERROR", 1.0))

    def _flush_now(self) -> None:
        session = self.session
        close = session.close_request
        pending = self._pending
        if pending is not None and not pending.done():
            if close is not None:
                # A write is pending, e.g. on a socket that does not drain (the usual reason
                # for a 1013): close now instead of after a write that may never finish.
                # Frames still queued (an error before a 1008/1009, alerts before a 1001)
                # go behind the pending write; a 1013 discarded its queue already. Tornado
                # aborts the connection if the close handshake does not finish in 5 s.
                frames = session.outbox.drain_frames()
                stream = getattr(self.ws_connection, "stream", None)
                if frames and stream is not None and not stream.closed():
                    stream.write(wire_bytes(frames))
                self._closing = True
                self.close(*close)
            return
        frames = session.outbox.drain_frames()
        if frames and not self._write(frames):
            self._closing = True
            return
        close = session.close_request
        if close is not None:
            self._closing = True
            self.close(*close)

    def _write(self, frames: list[Any]) -> bool:
        """Start writing ``frames``; False when the connection is gone."""
        conn = self.ws_connection
        if conn is None or conn.is_closing():
            return False
        stream = getattr(conn, "stream", None)
        try:
            if stream is not None and getattr(conn, "_compressor", None) is None:
                # One syscall for the batch; frame bytes shared with every other client.
                data = wire_bytes(frames)
                if not stream.writing() and stream.socket is not None:
                    # Nothing queued in Tornado: send directly (no Future, no buffer copy);
                    # Tornado takes over only what the kernel did not accept at once.
                    try:
                        sent = stream.socket.send(data)
                    except (BlockingIOError, InterruptedError):
                        sent = 0
                    except OSError:
                        sent = 0  # let stream.write() below meet the error and close
                    if sent == len(data):
                        return True
                    data = data[sent:]
                future = stream.write(data)
            else:
                for frame in frames:
                    future = self.write_message(frame.text)
        except (StreamClosedError, WebSocketClosedError):
            return False
        if future.done():
            return not future.cancelled() and future.exception() is None
        self._pending = future
        future.add_done_callback(self._write_done)
        return True

    def _write_done(self, future: asyncio.Future[None]) -> None:
        if self._pending is future:
            self._pending = None
        if not future.cancelled() and future.exception() is None:
            self.app.flusher.wake(self)  # what queued while the socket was busy

    def on_finish(self) -> None:
        self._closing = True


class _ApiHandler(_RtstreamMixin, APIHandler):
    auth_resource = AUTH_RESOURCE

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        # allow_nan=False: Infinity/NaN are not JSON; extreme inputs give null instead.
        self.finish(json.dumps(_finite(body), default=_json_default, allow_nan=False))

    def write_error_json(self, status: int, code: str, message: str) -> None:
        self.write_json({"error_code": code, "error_message": message}, status)


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
    """``GET rtstream/api/status``: versions, clients, topics, feed and counters."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        app = self.app
        hub = app.hub
        clients = []
        for conn in list(app.connections):
            s = conn.session
            clients.append(
                {
                    "client_id": s.client_id,
                    "connected_at": s.connected_at,
                    "subscriptions": sorted(s.outbox.subscriptions),
                    "conflated": s.outbox.conflated,
                    "queued_bytes": s.outbox.nbytes,
                    "delivered": s.outbox.delivered,
                    "received": s.received,
                    "rejected": s.rejected,
                }
            )
        topics = [
            {
                "topic": t.name,
                "seq": t.seq,
                "subscribers": len(t.subscribers),
                "buffered": len(t.buffer),
            }
            for t in hub.topics.values()
        ]
        self.write_json(
            {
                "version": app.version,
                "protocol_versions": list(PROTOCOL_VERSIONS),
                "epoch": hub.epoch,
                "clients": clients,
                "topics": topics,
                "feed": app.feed_status(),
                "counters": hub.stats(),
            }
        )


class SchemaHandler(_ApiHandler):
    """``GET rtstream/api/schema``: the protocol's JSON Schema (draft 2020-12)."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json(json_schema())


class InstrumentsHandler(_ApiHandler):
    """``GET rtstream/api/instruments``: id, symbol and last price of every instrument."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.write_json({"instruments": [i.as_json() for i in self.app.instruments]})


class InstrumentSnapshotHandler(_ApiHandler):
    """``GET rtstream/api/instruments/{symbol}/snapshot``: latest price, indicators, analysis."""

    @web.authenticated
    @authorized
    async def get(self, symbol: str) -> None:
        snapshot = self.app.pipeline.snapshot(symbol)
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
        self.write_json({"rules": [dataclasses.asdict(r) for r in self.app.store.rules()]})

    @web.authenticated
    @authorized
    async def post(self) -> None:
        spec = self.parse_body(RuleIn)
        if spec is None:
            return
        if spec.symbol not in self.app.instruments:
            self.write_error_json(
                400, "UNKNOWN_INSTRUMENT", f"unknown symbol {spec.symbol!r}: no such instrument"
            )
            return
        # RuleIn validated the whole rule in one pass; the engine's own check cannot fail.
        rule = self.app.store.add_rule(spec.model_dump())
        try:
            self.app.pipeline.add_rule(rule)
        except ValueError:
            self.app.store.delete_rule(rule.rule_id)  # keep store and engine in step
            raise
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
        if not self.app.store.delete_rule(rid):
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
        try:
            since = min(int(self.get_argument("since", "0")), 2**63 - 1)  # SQLite's INTEGER
            limit = min(10_000, max(1, int(self.get_argument("limit", "1000"))))
        except ValueError:
            self.write_error_json(400, "INVALID_MESSAGE", "'since' and 'limit' are integers")
            return
        symbol = self.get_argument("symbol", None)
        alerts = self.app.store.alerts_since(since, limit, symbol.upper() if symbol else None)
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
        ticks = [Tick(t.symbol, t.price, t.volume, t.timestamp or now) for t in batch.ticks]
        for tick in ticks:  # validated above, so the engine cannot refuse one midway
            app.pipeline.on_tick(tick)
        self.write_json({"accepted": len(ticks)})
