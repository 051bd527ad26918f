"""``rtstream/ws``: the WebSocket handler, a thin shell around the pure session.

It owns no protocol logic: it feeds frames to a
:class:`~jupyter_rtstream.core.session.ServerSession`, and when the session's waker fires
(via the per-server :class:`~.flush.Flusher`) it writes what
:meth:`~jupyter_rtstream.core.session.ServerSession.frames_to_send` returns, as pre-built
frame bytes, awaiting the socket so that a slow client backs up into its own bounded
outbox (and nobody else's). It asks the session, never the outbox or the hub.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from functools import partial
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..core.errors import CloseCode, close_reason
from ..core.messages import SUBPROTOCOL, SUBPROTOCOL_PREFIX
from ..core.outbox import Frame
from ..core.session import ServerSession
from .bus import RedisRelay
from .runtime import AUTH_RESOURCE, RtstreamHandlerMixin, user_key
from .wire import wire_bytes


class StreamWebSocketHandler(
    WebSocketMixin, WebSocketHandler, RtstreamHandlerMixin, JupyterHandler
):
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

    # A frozen or half-open peer must not hold its session and outbox for the keep-alive
    # default (ping every 30 s, closed after 90 s without a pong). jupyter_server checks for
    # a missing pong only when it sends the next ping, so: ping twice per heartbeat and close
    # after 1.5 intervals without a pong. A dead peer is closed within two heartbeat intervals
    # (as clients judge the server), and a live one may answer up to a whole interval late
    # (a stalled loop, a pong queued behind a large write) before it is judged dead. Explicit
    # ``ws_ping_interval`` / ``ws_ping_timeout`` tornado settings still win. (WebSocketMixin
    # reads both in milliseconds.) jupyter_server closes a timed-out peer without a code.
    @property
    def ping_interval(self) -> float:
        if "ws_ping_interval" in self.settings or self.app.heartbeat_interval <= 0:
            return float(super().ping_interval)
        return float(self.app.heartbeat_interval) * 500.0

    @property
    def ping_timeout(self) -> float:
        if (
            "ws_ping_interval" in self.settings
            or "ws_ping_timeout" in self.settings
            or self.app.heartbeat_interval <= 0
        ):
            return float(super().ping_timeout)
        return float(self.app.heartbeat_interval) * 1500.0

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
        # permessage-deflate is settled by the handshake: without it, frames are shared bytes.
        self._plain = getattr(self.ws_connection, "_compressor", None) is None
        self._closing = False
        self._pending: asyncio.Future[None] | None = None
        app = self.app
        self.user = user_key(self)
        limit = app.max_connections_per_user
        if sum(1 for c in list(app.connections) if c.user == self.user) >= limit:
            # No session: nothing was subscribed, nothing to undo. Others carry on.
            self._closing = True
            self.close(
                CloseCode.POLICY_VIOLATION, close_reason("CONNECTION_LIMIT", retry_after=30.0)
            )
            self.log.warning("rtstream: user %r is over %d connections", self.user, limit)
            return
        self.session = ServerSession(
            app.hub,
            app.instruments,
            uuid.uuid4().hex,
            limits=app.limits,
            # The flusher's wake, bound to this connection once (called per message).
            waker=partial(app.flusher.wake, self),
            heartbeat_interval=app.heartbeat_interval,
            server_version=app.version,
            last_alert_id=lambda: app.pipeline.committer.last_alert_id,
            alert_store_id=app.store_worker.store.store_id,  # immutable: safe to read here
        )
        app.connections.add(self)
        self.session.opened()
        self.log.debug("rtstream: client %s connected", self.session.client_id)

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if getattr(self, "session", None) is None:
            return None  # refused in open() (CONNECTION_LIMIT): frames dropped before close
        if isinstance(message, bytes):
            self.session.receive_binary()
            return None
        relay = self.app.relay
        if relay is not None and '"resume_from"' in message:
            resume = self.session.resume_of(message)
            if resume is not None and not self.app.hub.covers(*resume):
                # Tornado awaits this before reading the next frame: order is kept.
                return self._fill_then_receive(relay, resume, message)
        self.session.receive_text(message)
        return None

    async def _fill_then_receive(
        self, relay: RedisRelay, resume: tuple[str, int, str | None], message: str
    ) -> None:
        """A resume beyond the local replay buffer: read the gap back from the bus first."""
        await relay.fill(*resume)
        if not self._closing:
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
        self.session.close(code, reason)

    def write_pending(self) -> None:
        """Write the whole outbox now, unless a write to this socket is still pending: then
        the outbox keeps filling (and conflating) until that write completes.

        The session's waker (the flusher's ``wake`` bound to this connection) brings it
        here in the loop iteration after its outbox got frames or a close was requested,
        together with every other woken connection.
        """
        if self._closing:
            return
        try:
            pending = self._pending
            if pending is not None and not pending.done():
                self._close_behind_pending()
                return
            session = self.session
            frames = session.frames_to_send()
            if frames and not self._write(frames):
                self._closing = True
                return
            close = session.close_request
            if close is not None:
                self._close_as_requested(*close)
        except Exception:  # never leave a connection that can no longer be woken
            self.log.exception("rtstream: flushing client %s failed", self.session.client_id)
            self._closing = True
            self.close(CloseCode.INTERNAL_ERROR, close_reason("INTERNAL_ERROR", 1.0))

    def _close_behind_pending(self) -> None:
        """A write is pending, e.g. on a socket that does not drain (the usual reason for a
        1013): close now instead of after a write that may never finish. Frames still queued
        (an error before a 1008/1009, alerts before a 1001) go behind the pending write; a
        1013 discarded its queue already. Tornado aborts the connection if the close
        handshake does not finish in 5 s. Without a close request nothing happens: the
        outbox keeps filling until the pending write completes."""
        session = self.session
        close = session.close_request
        if close is None:
            return
        frames = session.frames_to_send()
        stream = getattr(self.ws_connection, "stream", None)
        if frames and stream is not None and not stream.closed():
            stream.write(wire_bytes(frames))
        self._close_as_requested(*close)

    def _close_as_requested(self, code: int, reason: str) -> None:
        """Close as the session asked, counted by code (``server_closes`` in the status API:
        a 1013 is on record even when the peer never reads its close frame)."""
        self._closing = True
        self.app.server_closes[code] += 1
        self.close(code, reason)

    def _write(self, frames: list[Frame]) -> bool:
        """Start writing ``frames``; False when the connection is gone.

        The common case (permessage-deflate off, nothing queued in Tornado) is one
        ``socket.send`` of the shared frame bytes and a few attribute reads: it runs once
        per client per message, cold (after the clients and the kernel had the CPU), so it
        touches as few objects as it can (``is_closing()`` as attributes: a closed stream
        has no socket).
        """
        conn = self.ws_connection
        if conn is None or conn.client_terminated or conn.server_terminated:
            return False
        stream = conn.stream
        try:
            if stream is not None and self._plain:
                # One syscall for the batch; frame bytes shared with every other client.
                if len(frames) == 1:
                    data = frames[0].wire or wire_bytes(frames)
                else:
                    data = wire_bytes(frames)
                sock = stream.socket
                if sock is not None and not stream.writing():
                    # Nothing queued in Tornado: send directly (no Future, no buffer copy);
                    # Tornado takes over only what the kernel did not accept at once.
                    try:
                        sent = sock.send(data)
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
