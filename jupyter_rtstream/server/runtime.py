"""What the Tornado handlers need of the running extension, as Protocols.

The handlers are typed against these, not against :class:`~.app.RtstreamApp`, so the
dependency runs one way only: ``app`` → ``handlers`` → ``runtime`` (no import cycle, no
lazy import). ``RtstreamApp`` satisfies :class:`Runtime` structurally.
"""

from __future__ import annotations

from typing import Any, Protocol, cast

from jupyter_server.extension.handler import ExtensionHandlerMixin

from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.session import Limits, ServerSession
from .flush import Flusher
from .pipeline import Pipeline
from .store import AlertStore

#: jupyter_server authorization resource of every rtstream endpoint.
AUTH_RESOURCE = "rtstream"


class Connection(Protocol):
    """One open WebSocket, as the extension sees it: a session and a way to close it."""

    session: ServerSession

    def shutdown(self, code: int, reason: str) -> None: ...


class Runtime(Protocol):
    """The extension's shared state and settings that handlers read."""

    hub: Hub
    instruments: InstrumentRegistry
    store: AlertStore
    pipeline: Pipeline
    limits: Limits
    flusher: Flusher
    connections: set[Connection]
    version: str
    heartbeat_interval: float
    max_message_size: int
    websocket_compression: bool
    strict_ticks: bool
    max_tick_batch: int

    def feed_status(self) -> dict[str, Any]: ...


class RtstreamHandlerMixin(ExtensionHandlerMixin):
    """``self.app``: the running extension, typed as :class:`Runtime`."""

    @property
    def app(self) -> Runtime:
        return cast(Runtime, self.extensionapp)
