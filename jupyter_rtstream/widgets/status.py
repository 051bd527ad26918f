"""Connection status badge: state, attempts, next retry, last error, lag; words and colour."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ipywidgets import HTML

from ..core.messages import ConnectionStatus
from ._base import LiveMixin, esc, fmt_time
from ._render import DEFAULT_COALESCE, DEFAULT_FPS

if TYPE_CHECKING:
    from ..client import Stream

#: Colour of each connection state (``ConnectionState`` values of the client).
STATE_COLORS: dict[str, str] = {
    "connecting": "#b7791f",
    "connected": "#2f855a",
    "reconnecting": "#c05621",
    "disconnected": "#718096",
}
ERROR_COLOR = "#c53030"
#: The badge's colour while a subscribed topic is silent (more than three usual intervals).
SILENT_COLOR = "#d69e2e"
#: Seconds between the badge's health checks (a ``ping`` and ``stream.health()``).
HEALTH_INTERVAL = 5.0


class StatusBadge(LiveMixin, HTML):  # type: ignore[misc]
    """The state of a stream, in words and colour.

    Feed it the client's ``StateChange`` events and ``connection_status`` messages
    (``badge.bind(stream)`` does both), or call ``badge.handle(...)`` yourself. Shows the
    state, why in words (the stream's ``status_text``: "server not reachable, retrying",
    "server busy (close 1013), retrying in 12 s", "refused: 403"), failed attempts, the next
    retry time, the last error (escaped) and how many messages the server conflated because
    this client lagged.
    """

    def __init__(
        self,
        stream: Stream | None = None,
        *,
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._init_live(fps, coalesce)
        self.state = "disconnected"
        self.status_text = ""
        self.attempts = 0
        self.next_retry_at: datetime | None = None
        self.last_error: str | None = None
        self.conflated = 0
        self.epoch: str | None = None
        #: States shown so far, oldest first, without repeats (bounded).
        self.history: deque[str] = deque(maxlen=100)
        self._unhooks: list[Any] = []
        #: The stream's last :class:`~jupyter_rtstream.client.Health` (None: not checked yet).
        self.health: Any = None
        self._health_task: asyncio.Task[None] | None = None
        self.history.append(self.state)
        self.value = self._html()
        if stream is not None:
            self.bind(stream)

    def bind(self, stream: Stream) -> None:
        """Show ``stream``'s current state now and follow its changes."""
        if self.render_stats.received == 0:
            self.history.clear()  # not "disconnected" before: just not bound yet
        self._unhooks.append(stream.on("state", self.handle))
        self._unhooks.append(stream.on("connection_status", self.handle))
        self.handle(_Snapshot(stream))
        self.flush()  # show the current state at once
        with contextlib.suppress(RuntimeError):  # no running loop: no health checks
            loop = asyncio.get_running_loop()
            self._health_task = loop.create_task(self._watch_health(stream))

    async def _watch_health(self, stream: Stream) -> None:
        """Every ``HEALTH_INTERVAL`` s: a ping (round trip), then the stream's health."""
        while not self.stopped:
            if stream.state.value == "connected":
                with contextlib.suppress(Exception):  # not connected, timed out: no RTT
                    await stream.ping(timeout=HEALTH_INTERVAL)
            self.show_health(stream.health())
            await asyncio.sleep(HEALTH_INTERVAL)

    def show_health(self, health: Any) -> None:
        """Show a :class:`~jupyter_rtstream.client.Health` (hover text, amber if silent)."""
        if not self.stopped:
            self.health = health
            self.invalidate()

    def unbind(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            self._health_task = None
        for unhook in self._unhooks:
            unhook()
        self._unhooks.clear()

    def stop(self) -> None:
        self.unbind()
        super().stop()

    def close(self) -> None:
        self.stop()
        super().close()

    def _apply(self, message: Any) -> bool:
        if isinstance(message, ConnectionStatus):
            self.conflated = message.data.conflated
            self.epoch = message.data.epoch
            return True
        state = getattr(message, "state", None)
        if state is None:
            return False
        value = str(getattr(state, "value", state))
        if not self.history or self.history[-1] != value:
            self.history.append(value)
        self.state = value
        self.status_text = str(getattr(message, "status_text", "") or "")
        self.attempts = int(getattr(message, "attempts", 0) or 0)
        self.next_retry_at = getattr(message, "next_retry_at", None)
        error = getattr(message, "last_error", None)
        if error is not None:
            self.last_error = str(error) or type(error).__name__
        elif value == "connected":
            self.last_error = None
        return True

    def _render(self) -> None:
        self.value = self._html()

    def _html(self) -> str:
        color = STATE_COLORS.get(self.state, "#718096")
        silent = list(self.health.silent) if self.health is not None else []
        if silent and self.state == "connected":
            color = SILENT_COLOR
        title = "" if self.health is None else self.health.text()
        parts = [
            f'<span class="rtstream-badge rtstream-{esc(self.state)}" title="{esc(title)}" '
            f'data-silent="{len(silent)}" '
            f'style="background:{color};color:white;border-radius:0.8em;'
            f'padding:0.1em 0.7em;font-weight:600">&#9679; {esc(self.state)}</span>'
        ]
        if silent and self.state == "connected":
            parts.append(f"silent: {esc(', '.join(silent[:3]))}")
        if self.status_text and self.status_text != self.state:
            parts.append(f'<span class="rtstream-reason">{esc(self.status_text[:200])}</span>')
        if self.attempts:
            parts.append(f"attempt {self.attempts}")
        if self.next_retry_at is not None and self.state == "reconnecting":
            parts.append(f"next retry at {fmt_time(self.next_retry_at)}")
        if self.conflated:
            parts.append(f"lagging: {self.conflated} conflated")
        if self.last_error:
            parts.append(
                f'<span style="color:{ERROR_COLOR}" title="{esc(self.last_error)}">'
                f"last error: {esc(self.last_error[:200])}</span>"
            )
        return '<div class="rtstream-status">' + " &middot; ".join(parts) + "</div>"


class _Snapshot:
    """A stream's current state, shaped like the client's ``StateChange``."""

    def __init__(self, stream: Stream) -> None:
        self.state = stream.state
        self.status_text = getattr(stream, "status_text", "")  # duck-typed streams too
        self.attempts = stream.attempts
        self.next_retry_at = stream.next_retry_at
        self.last_error = stream.last_error
