"""The asyncio client: one background task keeps a WebSocket to the server alive.

::

    stream = await jupyter_rtstream.connect()          # discovery, first connection
    stream.on("market_data", print, topic="market_data:AAPL")
    await stream.subscribe("market_data", "AAPL")      # -> the server's Ack
    async for message in stream:                       # streamed messages, in order
        ...
    await stream.close()

Everything runs on the running event loop (a plain ``asyncio.run`` script or ipykernel's
loop): no threads, no blocking calls. ``Stream(...).start()`` starts the background task
without awaiting anything (top-level ``await`` is optional in a notebook).

Reconnection: when a connection ends (server close, network cut, or no frame for
``missed_heartbeats`` times the server's ``heartbeat_interval``: a half-open socket), the stream
waits a full-jitter backoff delay (at least the close reason's ``retry_after``) and
reconnects; the attempt counter resets when the server's ``connection_status`` arrives. Then
every subscription is renewed with ``resume_from`` = the last ``seq`` seen and its
``epoch``: the server replays what was missed, the stream drops what was already delivered,
so the application sees each message once, in order. When the server cannot recover
(``ack.recovered`` false: it restarted, or the gap is older than its replay buffer) the
stream emits a :class:`~.state.GapEvent` (``stream.on("gap", cb)``) and, for alert topics,
first fills the gap from ``GET rtstream/api/alerts?since=``. An HTTP 401/403 on the upgrade
is final (``AuthenticationError``); so is ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeAlias

from pydantic import ValidationError
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.iostream import StreamClosedError
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

from ..core.codec import decode_server, encode
from ..core.errors import ProtocolError
from ..core.messages import (
    PROTOCOL_MAJOR,
    SERVER_MESSAGE_TYPES,
    SUBPROTOCOL,
    Ack,
    Alert,
    AlertPayload,
    AnalyticsUpdate,
    ConnectionStatus,
    Error,
    MarketData,
    Ping,
    TechnicalIndicators,
    Unsubscribe,
    topic_for,
    utc_now,
)
from .discovery import ServerInfo, discover
from .errors import (
    AuthenticationError,
    ClientError,
    ConnectionLost,
    NotConnectedError,
    RequestError,
    StreamClosed,
)
from .state import (
    CloseInfo,
    ConnectionState,
    GapEvent,
    ReconnectPolicy,
    StateChange,
    StreamStats,
    SubscriptionBook,
    TopicState,
    normalize_kind,
    normalize_symbol,
)

log = logging.getLogger("jupyter_rtstream.client")

ServerMessage: TypeAlias = (
    MarketData | TechnicalIndicators | AnalyticsUpdate | Alert | ConnectionStatus | Ack | Error
)
StreamedMessage: TypeAlias = MarketData | TechnicalIndicators | AnalyticsUpdate | Alert
Callback: TypeAlias = Callable[[Any], Any]

#: Events ``Stream.on`` accepts: every server message type, ``"*"`` (any server message),
#: ``"gap"`` (:class:`GapEvent`) and ``"state"`` (:class:`StateChange`).
EVENTS = frozenset({*SERVER_MESSAGE_TYPES, "*", "gap", "state"})
PROTOCOL_MAJOR_TEXT = str(PROTOCOL_MAJOR)
_FINAL_HTTP = {401, 403}
#: Refusals that mean "wrong URL / not this server" before we ever connected.
_WRONG_ENDPOINT_HTTP = {400, 404}


@dataclass(frozen=True)
class StreamOptions:
    """Tuning knobs, passed as keyword arguments to :func:`connect` / :class:`Stream`."""

    #: Full-jitter exponential backoff: delay before retry n is uniform(0, min(cap, base*2**n)).
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    backoff_factor: float = 2.0
    #: Random source of the jitter (tests pass a seeded one).
    rng: random.Random | None = None
    #: A connection silent for this many heartbeat intervals is dead (half-open): replace it.
    missed_heartbeats: float = 2.0
    #: Heartbeat interval assumed until the server announces its own (seconds).
    heartbeat_interval: float = 15.0
    #: Budget of one attempt: TCP connect + WebSocket upgrade + first connection_status.
    open_timeout: float = 10.0
    #: ``connect()`` gives up when not connected after this long (retrying meanwhile).
    connect_timeout: float = 30.0
    #: How long subscribe / unsubscribe / ping wait for the server's ack.
    request_timeout: float = 10.0
    #: Messages buffered for ``async for`` (the oldest are dropped beyond; 0 disables).
    queue_size: int = 10_000
    #: Also yield connection_status, ack and error messages from ``async for``.
    control_messages: bool = False
    #: After an unrecoverable gap on an alert topic, fetch the missed alerts over REST.
    alert_gap_fill: bool = True
    #: Offer the ``rtstream.v1`` WebSocket subprotocol.
    subprotocol: bool = True
    #: Verify TLS certificates (https servers).
    validate_cert: bool = True


async def connect(url: str | None = None, token: str | None = None, **options: Any) -> Stream:
    """Discover the server, connect, and return a connected :class:`Stream`.

    ``url`` is the Jupyter server's base URL (``http://127.0.0.1:8888/``,
    ``https://hub.example/user/alice/``); without it the server is discovered (see
    :mod:`.discovery`). ``options`` are :class:`StreamOptions` fields plus
    ``on_state_change`` (a callback registered before the first connection). Raises
    :class:`~.errors.DiscoveryError`, :class:`~.errors.AuthenticationError`, or
    :class:`TimeoutError` when no connection is up after ``connect_timeout`` seconds.
    """
    server = await asyncio.to_thread(discover, url, token)
    stream = Stream(server=server, **options)
    stream.start()
    try:
        await stream.wait_connected(stream.options.connect_timeout)
    except BaseException:
        await stream.close()
        raise
    return stream


@dataclass
class _Handler:
    callback: Callback
    topic: str | None


@dataclass
class _Pending:
    action: str
    topic: str | None
    conn: _Connection
    future: asyncio.Future[Ack] | None = None


class _Connection:
    """One WebSocket connection attempt and what we learnt from its connection_status."""

    def __init__(self, stream: Stream) -> None:
        loop = asyncio.get_running_loop()
        self.stream = stream
        self.loop = loop
        self.ws: WebSocketClientConnection | None = None
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        #: Set when the watchdog must re-plan: closed, or the first connection_status came.
        self.wakeup = asyncio.Event()
        self.opened_at = loop.time()
        self.last_received = self.opened_at
        self.statuses = 0
        self.epoch: str | None = None
        self.client_id: str | None = None
        self.heartbeat_interval: float | None = None
        self.dead = False

    def on_frame(self, raw: str | bytes | None) -> None:
        if self.dead:
            return
        if raw is None:
            self.closed.set()
            self.wakeup.set()
            return
        self.last_received = self.loop.time()
        self.stream._on_frame(self, raw)

    async def send(self, text: str) -> None:
        ws = self.ws
        if ws is None or self.closed.is_set():
            raise NotConnectedError("the connection is closed")
        try:
            await ws.write_message(text)
        except (WebSocketClosedError, StreamClosedError) as exc:
            raise NotConnectedError("the connection closed while sending") from exc

    def abort(self) -> None:
        """Drop the socket now, without a closing handshake (dead or replaced connection)."""
        self.dead = True
        ws = self.ws
        if ws is None:
            return
        iostream = getattr(ws.protocol, "stream", None)
        with contextlib.suppress(Exception):
            ws.close()
        if iostream is not None:
            iostream.close()
        self.closed.set()
        self.wakeup.set()

    async def close(self, timeout: float) -> None:
        """Closing handshake (code 1000), then drop the socket if the server is silent."""
        ws = self.ws
        if ws is not None and not self.closed.is_set():
            iostream = getattr(ws.protocol, "stream", None)
            with contextlib.suppress(Exception):
                ws.close(1000, "client closed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closed.wait(), timeout)
            if iostream is not None and not iostream.closed():
                iostream.close()
        self.dead = True
        self.closed.set()
        self.wakeup.set()


class Stream:
    """A self-healing subscription stream to one jupyter-rtstream server.

    Observable state: :attr:`state` (:class:`ConnectionState`), :attr:`attempts`,
    :attr:`last_error`, :attr:`next_retry_at`, and ``on("state", cb)``. Counters:
    :attr:`stats`. Session facts: :attr:`epoch`, :attr:`client_id`,
    :attr:`heartbeat_interval`, :attr:`conflated`, :attr:`subscriptions`.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        server: ServerInfo | None = None,
        on_state_change: Callback | None = None,
        **options: Any,
    ) -> None:
        self.options = StreamOptions(**options)
        self.server = server if server is not None else discover(url, token)
        self.stats = StreamStats()
        o = self.options
        self._policy = ReconnectPolicy(o.backoff_base, o.backoff_cap, o.backoff_factor, o.rng)
        self._book = SubscriptionBook(self.stats)
        self._state = ConnectionState.CONNECTING
        self.last_error: BaseException | None = None
        self.next_retry_at: datetime | None = None
        self.epoch: str | None = None
        self.client_id: str | None = None
        self.heartbeat_interval: float | None = None
        self.conflated = 0
        self._handlers: dict[str, list[_Handler]] = {}
        self._queue: deque[Any] = deque()
        self._queue_event = asyncio.Event()
        self._connected = asyncio.Event()
        self._finished = asyncio.Event()
        self._conn: _Connection | None = None
        self._requests: dict[str, _Pending] = {}
        self._sub_waiters: dict[str, list[asyncio.Future[Ack]]] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._final_error: BaseException | None = None
        self._connected_once = False
        #: The backoff wait (tests swap in a fake clock).
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        if on_state_change is not None:
            self.on("state", on_state_change)

    # ------------------------------------------------------------------ public API

    @property
    def state(self) -> ConnectionState:
        return self._state

    @property
    def attempts(self) -> int:
        """Failed or lost connections since the last healthy one (0 while connected)."""
        return self._policy.attempts

    @property
    def subscriptions(self) -> list[str]:
        """Topics this stream keeps subscribed (and renews after reconnects)."""
        return sorted(state.topic for state in self._book)

    @property
    def closed(self) -> bool:
        return self._state is ConnectionState.DISCONNECTED

    def start(self) -> Stream:
        """Start the background connection task on the running loop; returns ``self``."""
        if self._closing:
            raise StreamClosed("this stream was closed; create a new one")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"rtstream-client {self.server.url}"
            )
        return self

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait for a live connection; raise the final error if the stream gave up."""
        if self._task is None and not self._closing:
            self.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._state is not ConnectionState.CONNECTED:
            self._raise_if_final()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"no connection to {self.server.ws_url} after {timeout:g}s "
                    f"({self.attempts} failed attempts; last error: {self.last_error})"
                )
            waiters = [
                loop.create_task(self._connected.wait()),
                loop.create_task(self._finished.wait()),
            ]
            try:
                await asyncio.wait(waiters, timeout=remaining, return_when="FIRST_COMPLETED")
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def on(self, event: str, callback: Callback, *, topic: str | None = None) -> Callable[[], None]:
        """Call ``callback(item)`` for each ``event``; returns a function that unregisters it.

        ``event``: a server message type (``"market_data"``, ``"alert"``, ``"ack"``, ...),
        ``"*"`` for every server message, ``"gap"`` for :class:`GapEvent` or ``"state"`` for
        :class:`StateChange` (each transition and each scheduled retry). ``topic`` (e.g.
        ``"market_data:AAPL"``) narrows streamed messages and gap events to one topic.
        Callbacks may be plain functions or coroutine functions (run as tasks); their
        exceptions are logged and counted in ``stats.callback_errors``, never propagated.
        """
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {sorted(EVENTS)}")
        handler = _Handler(callback, topic)
        self._handlers.setdefault(event, []).append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.get(event, []).remove(handler)

        return remove

    async def subscribe(self, kind: str, symbol: str, *, timeout: float | None = None) -> Ack:
        """Subscribe to ``kind`` (market_data, technical_indicators, analytics, alerts) of
        ``symbol`` (``"*"`` for every symbol's alerts); return the server's ``ack``.

        The subscription is remembered and renewed (resumed) after every reconnect; when
        called while reconnecting it waits for the renewed connection's ack. Raises
        :class:`~.errors.RequestError` when the server refuses (e.g. ``UNKNOWN_INSTRUMENT``).
        """
        self._raise_if_final()
        state = self._book.add(kind, symbol)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Ack] = loop.create_future()
        self._sub_waiters.setdefault(state.topic, []).append(future)
        conn = self._live()
        if conn is not None:
            with contextlib.suppress(NotConnectedError):
                await self._send_subscribe(conn, state)
        return await self._await_ack(future, timeout, f"subscribe {state.topic}")

    async def unsubscribe(
        self, kind: str, symbol: str, *, timeout: float | None = None
    ) -> Ack | None:
        """Stop a subscription (it is not renewed any more); the server's ack, or None when
        there is no live connection (the server forgets subscriptions of closed ones)."""
        topic = topic_for(normalize_kind(kind), normalize_symbol(symbol))
        self._book.remove(topic)
        for waiter in self._sub_waiters.pop(topic, []):
            if not waiter.done():
                waiter.set_exception(RequestError("UNSUBSCRIBED", f"{topic} was unsubscribed"))
        conn = self._live()
        if conn is None:
            return None
        kind_, symbol_ = topic.split(":", 1)
        request_id, future = self._new_request("unsubscribe", topic, conn)
        request = Unsubscribe.model_validate(
            {"subscription_type": kind_, "symbol": symbol_, "request_id": request_id}
        )
        try:
            await conn.send(encode(request))
        except NotConnectedError:
            self._requests.pop(request_id, None)
            return None
        return await self._await_ack(future, timeout, f"unsubscribe {topic}")

    async def ping(self, *, timeout: float | None = None) -> float:
        """Round trip of a ``ping`` request to its ``ack``, in seconds."""
        self._raise_if_final()
        conn = self._live()
        if conn is None:
            raise NotConnectedError(f"cannot ping while {self._state.value}")
        request_id, future = self._new_request("ping", None, conn)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await conn.send(encode(Ping(request_id=request_id)))
        await self._await_ack(future, timeout, "ping")
        return loop.time() - started

    async def close(self) -> None:
        """Close for good (no reconnection): closing handshake, then the task ends."""
        if self._closing:
            if self._task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._task)
            return
        self._closing = True
        task, conn = self._task, self._conn
        if conn is not None:
            await conn.close(timeout=2.0)
        if task is not None and not task.done():
            if conn is None:
                task.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait({task}, timeout=2.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for aux in list(self._tasks):
            aux.cancel()
        self._finish(None)

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        """The next streamed message (plus control messages with ``control_messages``).

        Several concurrent ``async for`` loops share one queue. Iteration ends after
        ``close()``, and raises the final error (e.g. AuthenticationError) if there is one.
        """
        while not self._queue:
            if self._finished.is_set():
                if self._final_error is not None:
                    raise self._final_error
                raise StopAsyncIteration
            self._queue_event.clear()
            await self._queue_event.wait()
        return self._queue.popleft()

    async def __aenter__(self) -> Stream:
        self.start()
        await self.wait_connected(self.options.connect_timeout)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"<Stream {self.server.url} {self._state.value} attempts={self.attempts} "
            f"subscriptions={self.subscriptions}>"
        )

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        try:
            while not self._closing:
                close = await self._attempt()
                if self._closing or self._final_error is not None:
                    break
                delay = self._policy.next_delay(close.retry_after if close else None)
                self.next_retry_at = utc_now() + timedelta(seconds=delay)
                self._set_state(ConnectionState.RECONNECTING, notify_always=True)
                log.info(
                    "rtstream: %s; reconnecting in %.2fs (attempt %d)",
                    self.last_error,
                    delay,
                    self.attempts,
                )
                await self._sleep(delay)
                self.next_retry_at = None
        except asyncio.CancelledError:
            if not self._closing:
                self._finish(StreamClosed("the stream's task was cancelled"))
            raise
        except Exception as exc:  # a bug here must surface as a final state, not vanish
            log.exception("rtstream: client task failed")
            self._finish(exc)
        else:
            self._finish(self._final_error)

    async def _attempt(self) -> CloseInfo | None:
        """One connection: open it, serve it until it ends; the close info if it opened."""
        self.stats.connection_attempts += 1
        conn = _Connection(self)
        try:
            conn.ws = await self._open(conn)
        except AuthenticationError as exc:
            self._final_error = self.last_error = exc
            return None
        except HTTPClientError as exc:
            self.last_error = ConnectionLost(self._describe_http_error(exc))
            if exc.code in _WRONG_ENDPOINT_HTTP and not self._connected_once:
                self._final_error = StreamClosed(str(self.last_error))
            return None
        except Exception as exc:  # refused, reset, timeout, TLS, non-WebSocket answer...
            self.last_error = ConnectionLost(
                f"could not connect to {self.server.ws_url}: {type(exc).__name__}: {exc}"
            )
            return None
        conn.ready.set()
        if self._closing:
            await conn.close(timeout=1.0)
            return None
        self._conn = conn
        try:
            return await self._serve(conn)
        finally:
            self._conn = None
            conn.abort()
            self._connection_ended(conn)

    async def _open(self, conn: _Connection) -> WebSocketClientConnection:
        o = self.options
        request = HTTPRequest(
            self.server.ws_url,
            headers=self.server.headers(),
            connect_timeout=o.open_timeout,
            request_timeout=o.open_timeout,
            validate_cert=o.validate_cert,
        )
        try:
            return await websocket_connect(
                request,
                on_message_callback=conn.on_frame,
                subprotocols=[SUBPROTOCOL] if o.subprotocol else None,
            )
        except HTTPClientError as exc:
            if exc.code in _FINAL_HTTP:
                raise AuthenticationError(
                    f"the server at {self.server.url} refused our credentials (HTTP {exc.code}) "
                    f"for {self.server.ws_url}; token from {self.server.source}"
                    f"{'' if self.server.token else ' (no token)'}. Not retrying: pass the "
                    "right token= or set JUPYTER_RTSTREAM_TOKEN.",
                    exc.code,
                ) from None
            raise

    def _describe_http_error(self, exc: HTTPClientError) -> str:
        if exc.code == 599:
            return f"could not connect to {self.server.ws_url}: {exc.message}"
        hint = ""
        if exc.code == 404:
            hint = " (is the jupyter_rtstream server extension enabled at this base URL?)"
        return f"WebSocket upgrade to {self.server.ws_url} refused: HTTP {exc.code}{hint}"

    async def _serve(self, conn: _Connection) -> CloseInfo:
        """Watch the connection until it closes or goes silent; frames arrive in on_frame."""
        o = self.options
        loop = conn.loop
        while True:
            if conn.statuses == 0:
                deadline, why = conn.opened_at + o.open_timeout, "no connection_status"
            else:
                interval = conn.heartbeat_interval
                if interval is None:
                    interval = o.heartbeat_interval
                if interval <= 0:  # the server sends no heartbeats: only closes tell
                    await conn.closed.wait()
                    break
                deadline = conn.last_received + o.missed_heartbeats * interval
                why = f"no message for {o.missed_heartbeats:g} heartbeat intervals"
            remaining = deadline - loop.time()
            if remaining <= 0:
                silent = loop.time() - conn.last_received
                self.last_error = ConnectionLost(f"dead connection: {why} ({silent:.1f}s)")
                log.warning("rtstream: %s; replacing it", self.last_error)
                return CloseInfo(None, "heartbeat timeout")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.wakeup.wait(), remaining)
            conn.wakeup.clear()
            if conn.closed.is_set():
                break
        ws = conn.ws
        close = CloseInfo.parse(ws.close_code if ws else None, ws.close_reason if ws else None)
        if not self._closing:
            self.last_error = ConnectionLost(str(close))
        return close

    def _connection_ended(self, conn: _Connection) -> None:
        self._connected.clear()
        for request_id, pending in list(self._requests.items()):
            if pending.conn is conn:
                del self._requests[request_id]
                if pending.future is not None and not pending.future.done():
                    pending.future.set_exception(
                        NotConnectedError(f"connection lost before the {pending.action} ack")
                    )

    # ------------------------------------------------------------------ incoming frames

    def _on_frame(self, conn: _Connection, raw: str | bytes) -> None:
        self.stats.frames += 1
        if isinstance(raw, bytes):
            self._invalid("binary frame (the protocol is JSON text frames)")
            return
        message = decode_server(raw)
        if isinstance(message, ProtocolError):
            self._invalid(str(message))
            return
        if message.version.split(".", 1)[0] != PROTOCOL_MAJOR_TEXT:
            # core's server models accept any version string; this client speaks 1.x only.
            self._invalid(f"UNSUPPORTED_VERSION: {message.version[:20]!r} (this client: 1.x)")
            return
        try:
            self._on_message(conn, message)
        except Exception:  # never let a bug in handling one message kill the connection
            log.exception("rtstream: failed to handle a %s message", message.message_type)

    def _invalid(self, why: str) -> None:
        self.stats.invalid_frames += 1
        self.stats.last_invalid = why
        count = self.stats.invalid_frames
        if count <= 10 or count % 1000 == 0:
            log.warning("rtstream: ignored invalid frame #%d: %s", count, why[:200])

    def _on_message(self, conn: _Connection, message: ServerMessage) -> None:
        if isinstance(message, ConnectionStatus):
            self._on_status(conn, message)
            self._control(message)
        elif isinstance(message, Ack):
            self._on_ack(conn, message)
            self._control(message)
        elif isinstance(message, Error):
            self._on_error(message)
            self._control(message)
        elif self._book.accept(message, conn.epoch):
            self._deliver(message)

    def _on_status(self, conn: _Connection, status: ConnectionStatus) -> None:
        data = status.data
        conn.statuses += 1
        conn.epoch, conn.client_id = data.epoch, data.client_id
        conn.heartbeat_interval = data.heartbeat_interval
        self.epoch, self.client_id = data.epoch, data.client_id
        self.heartbeat_interval = data.heartbeat_interval
        self.conflated = data.conflated
        if conn.statuses == 1:
            conn.wakeup.set()  # the watchdog switches from open_timeout to heartbeats
            if self._connected_once:
                self.stats.reconnects += 1
            self._connected_once = True
            self._policy.reset()
            self.next_retry_at = None
            self._connected.set()
            self._set_state(ConnectionState.CONNECTED)
            log.info("rtstream: connected to %s (epoch %s)", self.server.ws_url, data.epoch)
            self._spawn(self._resubscribe(conn))

    def _on_ack(self, conn: _Connection, ack: Ack) -> None:
        pending = self._requests.pop(ack.data.request_id or "", None)
        if pending is not None and pending.future is not None and not pending.future.done():
            pending.future.set_result(ack)
        if ack.data.action != "subscribe" or ack.data.topic is None:
            return
        topic = ack.data.topic
        gap = self._book.on_subscribe_ack(ack, conn.epoch)
        for waiter in self._sub_waiters.pop(topic, []):
            if not waiter.done():
                waiter.set_result(ack)
        if gap is None:
            return
        state = self._book.topics.get(topic)
        log.info("rtstream: %s not recovered (%s)", topic, gap.reason)
        if state is not None and state.is_alerts and self.options.alert_gap_fill:
            self._spawn(self._fill_alerts(state, gap))
        else:
            if state is not None:
                state.filling = None
            self._emit("gap", gap, topic)

    def _on_error(self, error: Error) -> None:
        data = error.data
        pending = self._requests.pop(data.request_id or "", None)
        exc = RequestError(str(data.error_code), data.error_message, data.request_id)
        if pending is None:
            log.warning("rtstream: server error %s", exc)
            return
        if pending.future is not None and not pending.future.done():
            pending.future.set_exception(exc)
        if pending.action == "subscribe" and pending.topic is not None:
            if not self._sub_waiters.get(pending.topic):
                log.warning("rtstream: the server refused to renew %s: %s", pending.topic, exc)
            state = self._book.topics.get(pending.topic)
            if state is not None and not state.acked:
                self._book.remove(pending.topic)  # refused before it ever worked: forget it
            for waiter in self._sub_waiters.pop(pending.topic, []):
                if not waiter.done():
                    waiter.set_exception(exc)

    # ------------------------------------------------------------------ delivery

    def _deliver(self, message: StreamedMessage) -> None:
        self.stats.delivered += 1
        self._emit(message.message_type, message, message.topic)
        self._emit("*", message, message.topic)
        self._enqueue(message)

    def _control(self, message: ConnectionStatus | Ack | Error) -> None:
        self._emit(message.message_type, message, None)
        self._emit("*", message, None)
        if self.options.control_messages:
            self._enqueue(message)

    def _enqueue(self, message: Any) -> None:
        size = self.options.queue_size
        if size <= 0:
            return
        if len(self._queue) >= size:
            self._queue.popleft()
            self.stats.queue_overflow += 1
        self._queue.append(message)
        self._queue_event.set()

    def _emit(self, event: str, item: Any, topic: str | None) -> None:
        for handler in list(self._handlers.get(event, ())):
            if handler.topic is not None and handler.topic != topic:
                continue
            try:
                result = handler.callback(item)
                if inspect.isawaitable(result):
                    self._spawn(self._await_callback(result))
            except Exception:
                self.stats.callback_errors += 1
                log.exception("rtstream: %s callback failed", event)

    async def _await_callback(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            self.stats.callback_errors += 1
            log.exception("rtstream: async callback failed")

    def _set_state(self, state: ConnectionState, *, notify_always: bool = False) -> None:
        previous = self._state
        if previous is state and not notify_always:
            return
        self._state = state
        change = StateChange(state, previous, self.attempts, self.last_error, self.next_retry_at)
        self._emit("state", change, None)

    def _finish(self, error: BaseException | None) -> None:
        """Enter the final ``disconnected`` state; wake and fail everyone waiting."""
        if self._finished.is_set():
            return
        if error is not None:
            self._final_error = error
            self.last_error = error
        self._closing = True
        self.next_retry_at = None
        self._connected.clear()
        failure = error or StreamClosed("the stream is closed")
        for waiters in self._sub_waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
        self._sub_waiters.clear()
        for pending in self._requests.values():
            if pending.future is not None and not pending.future.done():
                pending.future.set_exception(failure)
        self._requests.clear()
        self._finished.set()
        self._queue_event.set()
        self._set_state(ConnectionState.DISCONNECTED)
        if error is not None:
            level = logging.DEBUG if isinstance(error, StreamClosed) else logging.ERROR
            if isinstance(error, AuthenticationError):
                level = logging.ERROR
            log.log(level, "rtstream: stream stopped: %s", error)

    # ------------------------------------------------------------------ requests

    def _live(self) -> _Connection | None:
        conn = self._conn
        if conn is None or conn.statuses == 0 or conn.closed.is_set():
            return None
        return conn

    def _raise_if_final(self) -> None:
        if self._final_error is not None:
            raise self._final_error
        if self._closing:
            raise StreamClosed("the stream is closed")

    def _new_request(
        self, action: str, topic: str | None, conn: _Connection
    ) -> tuple[str, asyncio.Future[Ack]]:
        request_id = f"{action[:1]}{next(self._ids)}"
        future: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._requests[request_id] = _Pending(action, topic, conn, future)
        return request_id, future

    async def _send_subscribe(self, conn: _Connection, state: TopicState) -> None:
        request_id = f"s{next(self._ids)}"
        self._requests[request_id] = _Pending("subscribe", state.topic, conn)
        request = self._book.subscribe_request(state, request_id)
        await conn.send(encode(request))

    async def _resubscribe(self, conn: _Connection) -> None:
        await conn.ready.wait()
        for state in self._book:
            if conn is not self._conn or conn.closed.is_set():
                return
            try:
                await self._send_subscribe(conn, state)
            except NotConnectedError:
                return

    async def _await_ack(
        self, future: asyncio.Future[Ack], timeout: float | None, what: str
    ) -> Ack:
        limit = self.options.request_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no answer to {what} within {limit:g}s") from None

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ alert gap fill

    async def _fill_alerts(self, state: TopicState, gap: GapEvent) -> None:
        since = self._book.fill_since(state)
        history: list[AlertPayload] | None = None
        error: str | None = None
        try:
            history = await self.fetch_alerts(since)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("rtstream: could not fill the alert gap of %s: %s", state.topic, error)
        alerts, filled = self._book.complete_fill(state.topic, history)
        for alert in alerts:
            self._deliver(alert)
        self._emit(
            "gap",
            replace(gap, filled=filled if history is not None else None, fill_error=error),
            state.topic,
        )

    async def fetch_alerts(self, since: int = 0) -> list[AlertPayload]:
        """``GET rtstream/api/alerts?since=<alert_id>``: the alert history after ``since``."""
        request = HTTPRequest(
            self.server.api_url(f"rtstream/api/alerts?since={int(since)}"),
            headers=self.server.headers(),
            request_timeout=self.options.request_timeout,
            validate_cert=self.options.validate_cert,
        )
        response = await AsyncHTTPClient().fetch(request, raise_error=False)
        if response.code != 200:
            raise ClientError(f"GET rtstream/api/alerts answered HTTP {response.code}")
        try:
            body = json.loads(response.body)
            items = body["alerts"]
            if not isinstance(items, list):
                raise TypeError("'alerts' is not a list")
        except (ValueError, KeyError, TypeError) as exc:
            raise ClientError(f"GET rtstream/api/alerts: unexpected body ({exc})") from None
        payloads = []
        for item in items:
            try:
                payloads.append(AlertPayload.model_validate(item))
            except ValidationError as exc:
                self._invalid(f"alert history item: {exc.error_count()} validation errors")
        return payloads
