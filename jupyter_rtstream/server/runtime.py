"""What the Tornado handlers need of the running extension, as Protocols.

The handlers are typed against these, not against :class:`~.app.RtstreamApp`, so the
dependency runs one way only: ``app`` → ``handlers`` → ``runtime`` (no import cycle, no
lazy import). ``RtstreamApp`` satisfies :class:`Runtime` structurally.
"""

from __future__ import annotations

import hmac
from collections import Counter
from collections.abc import Callable
from typing import Any, Protocol, cast

from jupyter_server.extension.handler import ExtensionHandlerMixin

from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.session import Limits, ServerSession
from .bus import RedisRelay
from .flush import Flusher
from .keepalive import KeepAlive
from .pipeline import Pipeline
from .store_worker import StoreWorker

#: jupyter_server authorization resource of every rtstream endpoint.
AUTH_RESOURCE = "rtstream"


class Connection(Protocol):
    """One open WebSocket, as the extension sees it: a session and a way to close it."""

    session: ServerSession
    #: Who opened it (``max_connections_per_user``, and what the status API shows whom).
    user: str

    def shutdown(self, code: int, reason: str) -> None: ...

    def send_ping(self) -> None:
        """The keep-alive check: close a peer silent for too long, else ping it."""


class Runtime(Protocol):
    """The extension's shared state and settings that handlers read."""

    hub: Hub
    instruments: InstrumentRegistry
    store_worker: StoreWorker
    pipeline: Pipeline
    limits: Limits
    flusher: Flusher
    connections: set[Connection]
    #: Pings every open connection on one timer (not one timer per connection).
    keepalive: KeepAlive
    #: The newest published alert id (an alert topic's ack), one callable for all sessions.
    published_alert_id: Callable[[], int | None]
    #: Closes the server asked for, by close code (``server_closes`` in the status API).
    server_closes: Counter[int]
    version: str
    heartbeat_interval: float
    max_message_size: int
    websocket_compression: bool
    strict_ticks: bool
    max_tick_batch: int
    max_symbols: int
    max_rules: int
    max_clock_skew: float
    max_connections_per_user: int

    #: The Redis bus reader (``bus = "redis"``), else None.
    relay: RedisRelay | None

    def feed_status(self) -> dict[str, Any]: ...

    def read_only_symbols(self) -> frozenset[str]: ...

    def snapshot(self, symbol: str) -> dict[str, Any] | None: ...

    def first_use(self, symbol: str) -> None: ...


class RtstreamHandlerMixin(ExtensionHandlerMixin):
    """``self.app``: the running extension, typed as :class:`Runtime`."""

    @property
    def app(self) -> Runtime:
        return cast(Runtime, self.extensionapp)


def user_key(handler: Any) -> str:
    """Who a request is, for ``max_connections_per_user`` and the status API.

    jupyter_server makes up a new anonymous user for every request authenticated by the
    server's own token (no cookie), so the username alone would let one token holder open
    unlimited connections: every holder of the server's token is one user, ``"token"``.
    Otherwise (a login cookie, JupyterHub) it is the authenticated username.
    """
    token = getattr(handler, "token", None)
    provider = getattr(handler, "identity_provider", None)
    if token and provider is not None:
        offered = provider.get_token(handler) or ""
        if hmac.compare_digest(str(offered).encode(), str(token).encode()):
            return "token"
    user = handler.current_user
    if isinstance(user, dict):
        user = user.get("name") or user.get("username")
    return "user:" + str(getattr(user, "username", None) or user)
