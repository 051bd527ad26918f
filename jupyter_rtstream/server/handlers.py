"""The extension's URL table: every endpoint and the handler that serves it.

The app imports this (one direction only); the handlers themselves are typed against
:class:`~.runtime.Runtime`, never against the app.
"""

from __future__ import annotations

from tornado.web import RequestHandler

from .rest_handlers import (
    AlertRuleHandler,
    AlertRulesHandler,
    AlertsHandler,
    InstrumentHistoryHandler,
    InstrumentsHandler,
    InstrumentSnapshotHandler,
    SchemaHandler,
    StatusHandler,
    TicksHandler,
)
from .ws_handler import StreamWebSocketHandler

#: ``(pattern, handler)`` relative to the server's ``base_url``.
HANDLERS: list[tuple[str, type[RequestHandler]]] = [
    (r"/rtstream/ws", StreamWebSocketHandler),
    (r"/rtstream/api/status", StatusHandler),
    (r"/rtstream/api/schema", SchemaHandler),
    (r"/rtstream/api/instruments", InstrumentsHandler),
    (r"/rtstream/api/instruments/([^/]+)/snapshot", InstrumentSnapshotHandler),
    (r"/rtstream/api/instruments/([^/]+)/history", InstrumentHistoryHandler),
    (r"/rtstream/api/alerts/rules", AlertRulesHandler),
    (r"/rtstream/api/alerts/rules/([^/]+)", AlertRuleHandler),
    (r"/rtstream/api/alerts", AlertsHandler),
    (r"/rtstream/api/ticks", TicksHandler),
]
