"""``rtstream/ws``: the WebSocket handler, a thin shell around the pure session.

It owns no protocol logic: it feeds frames to a
:class:`~jupyter_rtstream.core.session.ServerSession`, and when the session's waker fires
(via the per-server :class:`~.flush.Flusher`) it writes what
:meth:`~jupyter_rtstream.core.session.ServerSession.frames_to_send` returns, as pre-built
frame bytes, awaiting the socket so that a slow client backs up into its own bounded
outbox (and nobody else's). It asks the session, never the outbox or the hub.

An open connection keeps only what it still uses (issue 15, idle memory per client): the
handshake's request and response state is released once ``open()`` has run, the frame
loop runs in a task of its own (so the coroutines of the handshake finish instead of
staying suspended above it), and the keep-alive is the server's one timer
(:class:`~.keepalive.KeepAlive`) instead of a ``PeriodicCallback`` per connection.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections import deque
from collections.abc import Awaitable
from functools import lru_cache, partial
from typing import Any

from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from tornado import web
from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError
from tornado.log import gen_log
from tornado.websocket import (
    WebSocketClosedError,
    WebSocketHandler,
    WebSocketProtocol13,
    _WebSocketParams,
)

from ..core.errors import CloseCode, close_reason
from ..core.messages import SUBPROTOCOL, SUBPROTOCOL_PREFIX
from ..core.outbox import Frame
from ..core.session import ServerSession
from .bus import RedisRelay
from .flush import Flusher
from .runtime import AUTH_RESOURCE, RtstreamHandlerMixin, user_key
from .wire import wire_bytes

#: Stands in for the request's and the response's headers once the connection is open:
#: nothing reads or writes them after the handshake (Tornado disables the response
#: methods on a detached connection), so every connection can share one empty instance.
_SPENT_HEADERS = HTTPHeaders()
_NO_ARGUMENTS: dict[str, list[bytes]] = {}
#: The running frame loops of every open connection (see ``_Protocol``).
_FRAME_LOOPS: set[asyncio.Future[None]] = set()


@lru_cache(maxsize=8)
def _protocol_params(max_message_size: int, compress: bool) -> _WebSocketParams:
    """One parameter object for every connection with the same settings (read-only to
    Tornado): no ``ping_interval``, see ``StreamWebSocketHandler.get_websocket_protocol``."""
    return _WebSocketParams(
        max_message_size=max_message_size, compression_options={} if compress else None
    )


class _ShortQueue(list[Any]):
    """``deque.popleft`` on a list, for an open connection's ``IOStream`` write queues.

    An empty ``deque`` costs about 760 bytes (its first 64-slot block), and an IOStream
    has two (pending write futures, buffered chunks), against 56 bytes for an empty list.
    These queues stay short here: the writer starts no new write while one is pending
    (``write_pending``), and small writes are merged into one chunk by Tornado, so
    ``pop(0)`` moves a few pointers. (With permessage-deflate a batch is one
    ``write_message`` per frame, up to the outbox's bound: draining 10,000 costs ~5 ms,
    small beside the task Tornado makes per compressed frame.) IOStream uses only what a
    list has plus ``popleft`` (``append``, ``[0]``, ``[-1]``, ``clear``, truth, iteration).
    """

    __slots__ = ()

    def popleft(self) -> Any:
        return self.pop(0)


def _shorten_write_queues(stream: object) -> None:
    """Swap the stream's two write deques for :class:`_ShortQueue` (keeping what they
    hold); left alone if a Tornado version no longer has them as deques."""
    futures = getattr(stream, "_write_futures", None)
    if type(futures) is deque:
        setattr(stream, "_write_futures", _ShortQueue(futures))  # noqa: B010
    buffer = getattr(stream, "_write_buffer", None)
    chunks = getattr(buffer, "_buffers", None)
    if type(chunks) is deque:
        setattr(buffer, "_buffers", _ShortQueue(chunks))  # noqa: B010


class _Protocol(WebSocketProtocol13):
    """Tornado's RFC 6455 protocol, with the frame loop in a task of its own.

    Tornado awaits the frame loop at the bottom of the handshake, so the whole chain that
    led there (``RequestHandler._execute``, jupyter_server's ``ws_authenticated`` and
    ``authorized`` wrappers, ``get()``, ``accept_connection``) would stay suspended for
    the connection's life, each coroutine with its frame. Started as a task instead (as
    Tornado's own client side does), the handshake returns and only the loop remains.
    Errors end as before: logged, and the connection aborted.
    """

    async def _receive_frame_loop(self) -> None:
        # A strong reference (the event loop keeps weak ones only), held outside the
        # protocol: one more attribute on it would cost a per-instance dict (~1.5 KB).
        _FRAME_LOOPS.add(asyncio.ensure_future(self._run_frame_loop()))

    async def _run_frame_loop(self) -> None:
        try:
            await super()._receive_frame_loop()
        except asyncio.CancelledError:  # as accept_connection(): abort, do not log
            self._abort()
        except ValueError:
            gen_log.debug("Malformed WebSocket request received", exc_info=True)
            self._abort()
        except Exception:  # what RequestHandler._execute logged before
            self.handler.log_exception(*sys.exc_info())
            self._abort()
        finally:
            _FRAME_LOOPS.discard(asyncio.current_task())


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

    def get_websocket_protocol(self) -> WebSocketProtocol13 | None:
        """Tornado's protocol without Tornado's own pinging: ``ping_interval`` above is
        jupyter_server's (in milliseconds) and Tornado would read it as seconds, one
        sleeping task per connection that pings every few hours. The keep-alive is
        jupyter_server's check, run by the server's one timer (``app.keepalive``)."""
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        options = self.get_compression_options()
        if options:  # permessage-deflate with parameters of its own: not shared
            params = _WebSocketParams(
                max_message_size=self.max_message_size, compression_options=options
            )
        else:
            params = _protocol_params(self.max_message_size, options is not None)
        return _Protocol(self, False, params)

    def send_ping(self) -> None:
        """``WebSocketMixin``'s keep-alive check, for one connection (``app.keepalive``)."""
        if self.ws_connection is not None:
            super().send_ping()

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
        # Not WebSocketMixin.open(): it would start a PeriodicCallback for this connection.
        # The server's keep-alive timer pings it instead, with the same interval/timeout.
        self.log.debug("Opening websocket %s", self.request.path)
        self.last_ping = self.last_pong = IOLoop.current().time()
        try:
            self._open_session()
        finally:
            self._release_handshake_state()

    def _open_session(self) -> None:
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
            waker=partial(Flusher.wake, app.flusher, self),
            heartbeat_interval=app.heartbeat_interval,
            server_version=app.version,
            last_alert_id=app.published_alert_id,
            alert_store_id=app.store_worker.store.store_id,  # immutable: safe to read here
        )
        app.connections.add(self)
        app.keepalive.start(self.ping_interval)
        self.session.opened()
        self.log.debug("rtstream: client %s connected", self.session.client_id)

    def _release_handshake_state(self) -> None:
        """Drop what only the handshake needed (about 5 KB per connection), and give the
        stream write queues sized for a connection that has one write pending at a time.

        Read before this point, never after: the request's headers, arguments and body
        (authentication, origin check, subprotocol, ``user_key``), the HTTP/1 connection
        objects the stream was detached from, the response headers and the login cookie
        already written with the 101, the template namespace (Tornado clears it at close).
        What stays is what an open connection and its log lines use: the request's
        method, uri, path, remote_ip and timing, and the authenticated ``current_user``.
        """
        if self.ws_connection is not None:
            _shorten_write_queues(self.ws_connection.stream)
        request = self.request
        request.headers = _SPENT_HEADERS
        request.body = b""
        request.arguments = request.query_arguments = request.body_arguments = _NO_ARGUMENTS
        request.connection = None
        request.server_connection = None
        # del, not __dict__.pop(): reading __dict__ would give the object a dict of its own.
        if hasattr(request, "_cookies"):
            del request._cookies
        self._headers = _SPENT_HEADERS
        if hasattr(self, "_new_cookie"):
            del self._new_cookie
        self.ui = None  # type: ignore[assignment]

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
