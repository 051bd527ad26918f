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
from datetime import datetime
from typing import Any, TypeVar

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from pydantic import BaseModel, ValidationError
from tornado import web

from ..core.codec import summarize
from ..core.messages import PROTOCOL_VERSIONS, format_timestamp, json_schema, utc_now
from ..core.rest import RuleIn, TickBatch, TickBatchLenient
from .feed import Tick
from .runtime import AUTH_RESOURCE, RtstreamHandlerMixin


class _ApiHandler(RtstreamHandlerMixin, APIHandler):
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
        hub = app.hub.status()
        queues: dict[str, dict[str, Any]] = hub["clients"]
        clients = []
        for connection in list(app.connections):
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
                "topics": hub["topics"],
                "feed": app.feed_status(),
                "counters": hub["counters"],
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
