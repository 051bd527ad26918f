"""One keep-alive timer per server, pinging every open WebSocket.

jupyter_server's ``WebSocketMixin`` starts a ``PeriodicCallback`` per connection (a timer
handle, a bound method and the callback's state for every idle client). The contract is
the same here, only the timer is shared: every ``interval_ms`` each open connection runs
its ``send_ping`` (``WebSocketMixin``'s: close the peer if its last pong is older than
``ping_timeout``, else ping it). A connection's first ping comes within one interval of
its open (not exactly one interval after), so a peer that never answers is still closed
at the first tick after ``ping_timeout``, as with a timer of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Protocol

from tornado.ioloop import PeriodicCallback

log = logging.getLogger(__name__)


class Pingable(Protocol):
    """An open connection with jupyter_server's keep-alive check."""

    def send_ping(self) -> None: ...


class KeepAlive:
    """Pings ``connections`` (the server's set of open connections) on one timer."""

    def __init__(self, connections: Iterable[Pingable]) -> None:
        self._connections = connections
        self._timer: PeriodicCallback | None = None
        self._stopped = False
        self.interval_ms = 0.0

    @property
    def running(self) -> bool:
        return self._timer is not None

    def start(self, interval_ms: float) -> None:
        """Start the timer (once: the interval comes from settings, the same for every
        connection); ``interval_ms <= 0`` disables pings, as ``ws_ping_interval = 0``.
        Never again after :meth:`stop`: a handshake that completes while the server shuts
        down must not leave a timer behind."""
        if self._timer is not None or self._stopped or interval_ms <= 0:
            return
        self.interval_ms = interval_ms
        self._timer = PeriodicCallback(self._tick, interval_ms)
        self._timer.start()

    def stop(self) -> None:
        self._stopped = True
        if self._timer is not None:
            self._timer.stop()
            self._timer = None

    def _tick(self) -> None:
        for connection in list(self._connections):
            try:
                connection.send_ping()
            except Exception:  # one broken connection must not stop the others' pings
                log.exception("rtstream: keep-alive ping failed")
