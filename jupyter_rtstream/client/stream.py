"""The asyncio client: a thin I/O adapter around :class:`~.protocol.ClientProtocol`.

::

    stream = await jupyter_rtstream.connect()          # discovery, first connection
    stream.on("market_data", print, topic="market_data:AAPL")
    await stream.subscribe("market_data", "AAPL")      # -> the server's Ack
    async for message in stream:                       # streamed messages, in order
        ...
    await stream.close()

The split: :mod:`.protocol` takes every decision (what to send, what to deliver, when a
connection is dead, how long to wait before retrying, which gap to report); this module only
moves bytes and time: it opens Tornado WebSockets, feeds frames and the loop's clock to the
protocol, writes what it returns, sleeps until its next deadline, and turns its events into
callbacks, the ``async for`` queue (:mod:`.dispatch`) and the futures of
``subscribe``/``unsubscribe``/``ping``. Tornado's objects stay in :mod:`.transport`.

Everything runs on the running event loop (a plain ``asyncio.run`` script or ipykernel's
loop): no threads except discovery's file reads (``asyncio.to_thread``), no blocking calls,
none in a constructor. ``Stream(...).start()`` starts the background task without awaiting
anything (top-level ``await`` is optional in a notebook).

How the stream reconnects, resumes and reports gaps is decided in :mod:`.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from types import TracebackType
from typing import Any, Generic, TypeVar, overload

from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClosedError

from ..core.messages import Ack, AlertPayload, utc_now
from .discovery import ServerInfo, discover
from .dispatch import EVENTS, Callback, Dispatcher
from .errors import DiscoveryError, NotConnectedError, StreamClosed
from .events import (
    ConnectionDead,
    ControlReceived,
    Delivered,
    FetchAlerts,
    RequestOutcome,
)
from .options import StreamOptions
from .protocol import ClientProtocol, log
from .state import CloseInfo, ConnectionState, GapEvent, StateChange, StreamStats
from .transport import Socket, describe_http_error, fetch_alert_history

__all__ = ["EVENTS", "Stream", "StreamOptions", "connect"]

T = TypeVar("T")


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


class _Mirror(Generic[T]):
    """A read-only :class:`Stream` attribute: the protocol's attribute of the same name."""

    def __init__(self, doc: str) -> None:
        self.__doc__ = doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Mirror[T]: ...
    @overload
    def __get__(self, obj: Stream, owner: type) -> T: ...
    def __get__(self, obj: Stream | None, owner: type) -> _Mirror[T] | T:
        if obj is None:
            return self
        value: T = getattr(obj._proto, self.name)
        return value


class Stream:
    """A self-healing subscription stream to one jupyter-rtstream server.

    ``Stream(server=ServerInfo(...))``, ``Stream(url, token)`` or ``Stream()``: the
    constructor does no I/O. Without ``server=`` (or without both ``url`` and ``token``) the
    server is discovered in the background task, off the loop; ``Stream(server=discover())``
    is the explicit synchronous spelling.

    Observable state: :attr:`state` (:class:`ConnectionState`), :attr:`attempts`,
    :attr:`last_error`, :attr:`last_close`, :attr:`next_retry_at`, and ``on("state", cb)``.
    Counters: :attr:`stats`. Session facts: :attr:`epoch`, :attr:`client_id`,
    :attr:`heartbeat_interval`, :attr:`conflated`, :attr:`subscriptions`.
    """

    state = _Mirror[ConnectionState]("connecting, connected, reconnecting or disconnected.")
    last_error = _Mirror[BaseException | None]("Why the last connection or attempt ended.")
    last_close = _Mirror[CloseInfo | None](
        "The last close the server sent (code, reason, retry_after) or a heartbeat timeout; "
        "unlike last_error, failed reconnection attempts leave it alone."
    )
    next_retry_at = _Mirror[datetime | None]("UTC time of the next attempt, if one is due.")
    epoch = _Mirror[str | None]("The server's epoch (seqs restart when it changes).")
    client_id = _Mirror[str | None]("The id the server gave the current connection.")
    heartbeat_interval = _Mirror[float | None]("The server's heartbeat interval (s).")
    conflated = _Mirror[int]("Messages the server conflated for this client (it lagged).")
    stats = _Mirror[StreamStats]("Counters of this stream; never reset.")

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
        if server is None and url is not None and token is not None:
            server = ServerInfo(url, token)  # fully named: nothing to look up
        self._server = server
        self._lookup = (url, token)
        self._proto = ClientProtocol(self.options)
        self._app = Dispatcher(self._proto.stats, self.options.queue_size)
        #: Set on every state change (wait_connected re-checks the state).
        self._state_changed = asyncio.Event()
        self._futures: dict[int, asyncio.Future[Ack | None]] = {}
        self._socket: Socket | None = None
        self._task: asyncio.Task[None] | None = None
        #: The backoff wait (tests swap in a fake clock).
        self._sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
        if on_state_change is not None:
            self.on("state", on_state_change)

    @property
    def server(self) -> ServerInfo:
        """Where this stream connects (known once discovery ran, if it had to run)."""
        if self._server is None:
            raise NotConnectedError("the server is not discovered yet: await wait_connected()")
        return self._server

    @property
    def attempts(self) -> int:
        """Failed or lost connections since the last healthy one (0 while connected)."""
        return self._proto.policy.attempts

    @property
    def subscriptions(self) -> list[str]:
        """Topics this stream keeps subscribed (and renews after reconnects)."""
        return sorted(state.topic for state in self._proto.book)

    @property
    def closed(self) -> bool:
        return self._proto.finished

    # ------------------------------------------------------------------ public API

    def start(self) -> Stream:
        """Start the background connection task on the running loop; returns ``self``."""
        if self._proto.closing:
            raise StreamClosed("this stream was closed; create a new one")
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"rtstream-client {self._where()}"
            )
        return self

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait for a live connection; raise the final error if the stream gave up."""
        if self._task is None and not self._proto.closing:
            self.start()
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self.state is not ConnectionState.CONNECTED:
            self._proto.raise_if_final()
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise TimeoutError(
                    f"no connection to {self._where()} after {timeout:g}s "
                    f"({self.attempts} failed attempts; last error: {self.last_error})"
                )
            self._state_changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._state_changed.wait(), remaining)

    def on(self, event: str, callback: Callback, *, topic: str | None = None) -> Callable[[], None]:
        """Call ``callback(item)`` for each ``event``; returns a function that unregisters it.

        ``event``: a server message type (``"market_data"``, ``"alert"``, ``"ack"``, ...),
        ``"*"`` for every server message, ``"gap"`` for :class:`GapEvent` or ``"state"`` for
        :class:`StateChange` (each transition and each scheduled retry). ``topic`` (e.g.
        ``"market_data:AAPL"``) narrows streamed messages and gap events to one topic.
        Callbacks may be plain functions or coroutine functions (run as tasks); their
        exceptions are logged and counted in ``stats.callback_errors``, never propagated.
        """
        return self._app.on(event, callback, topic)

    async def subscribe(self, kind: str, symbol: str, *, timeout: float | None = None) -> Ack:
        """Subscribe to ``kind`` (market_data, technical_indicators, analytics, alerts) of
        ``symbol`` (``"*"`` for every symbol's alerts); return the server's ``ack``.

        The subscription is remembered and renewed (resumed) after every reconnect; when
        called while reconnecting it waits for the renewed connection's ack. Raises
        :class:`~.errors.RequestError` when the server refuses (e.g. ``UNKNOWN_INSTRUMENT``).
        """
        ticket = self._proto.subscribe(kind, symbol)
        _, topic = self._proto.requests.open[ticket]
        ack = await self._outcome(ticket, timeout, f"subscribe {topic}")
        if ack is None:  # the protocol answers subscribes with an ack or an error only
            raise NotConnectedError(f"subscribe {topic}: no ack")
        return ack

    async def unsubscribe(
        self, kind: str, symbol: str, *, timeout: float | None = None
    ) -> Ack | None:
        """Stop a subscription (it is not renewed any more); the server's ack, or None when
        there is no live connection (the server forgets subscriptions of closed ones)."""
        ticket = self._proto.unsubscribe(kind, symbol)
        if ticket is None:
            self._process()
            return None
        _, topic = self._proto.requests.open[ticket]
        return await self._outcome(ticket, timeout, f"unsubscribe {topic}")

    async def ping(self, *, timeout: float | None = None) -> float:
        """Round trip of a ``ping`` request to its ``ack``, in seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._outcome(self._proto.ping(), timeout, "ping")
        return loop.time() - started

    async def close(self) -> None:
        """Close for good (no reconnection): closing handshake, then the task ends."""
        if self._proto.closing:
            if self._task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._task)
            return
        self._proto.close()
        task, sock = self._task, self._socket
        if sock is not None:
            await sock.close(timeout=2.0)
        if task is not None and not task.done():
            if sock is None:
                task.cancel()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait({task}, timeout=2.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._app.cancel_tasks()
        self._proto.finish(None)
        self._process()

    async def fetch_alerts(self, since: int = 0) -> list[AlertPayload]:
        """``GET rtstream/api/alerts?since=<alert_id>``: the alert history after ``since``."""
        return await fetch_alert_history(
            self.server, self.options, since, self._proto.count_invalid
        )

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        """The next streamed message (plus control messages with ``control_messages``).

        Several concurrent ``async for`` loops share one queue. Iteration ends after
        ``close()``, and raises the final error (e.g. AuthenticationError) if there is one.
        """
        queue = self._app.queue
        while not queue:
            if self._proto.finished:
                if self._proto.final_error is not None:
                    raise self._proto.final_error
                raise StopAsyncIteration
            self._app.queued.clear()
            await self._app.queued.wait()
        return queue.popleft()

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
        where = self._server.url if self._server is not None else "(not discovered yet)"
        return (
            f"<Stream {where} {self.state.value} attempts={self.attempts} "
            f"subscriptions={self.subscriptions}>"
        )

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        proto = self._proto
        try:
            if self._server is None:
                try:
                    self._server = await asyncio.to_thread(discover, *self._lookup)
                except (DiscoveryError, ValueError) as exc:
                    proto.finish(exc)
            while not proto.closing:
                await self._attempt()
                if proto.closing or proto.retry_delay is None:
                    break
                await self._sleep(proto.retry_delay)
        except asyncio.CancelledError:
            if not proto.closing:
                proto.finish(StreamClosed("the stream's task was cancelled"))
                self._process()
            raise
        except Exception as exc:  # a bug here must surface as a final state, not vanish
            log.exception("rtstream: client task failed")
            proto.finish(exc)
        else:
            proto.finish(proto.final_error)
        self._process()

    async def _attempt(self) -> None:
        """One connection: open it, then watch it until it ends or goes silent."""
        loop, proto, server = asyncio.get_running_loop(), self._proto, self.server
        sock = self._socket = Socket(proto.begin_attempt(loop.time()))
        try:
            await sock.open(server, self.options, lambda raw: self._on_frame(sock, raw))
        except HTTPClientError as exc:
            why = describe_http_error(server, exc)
            proto.connection_failed(why, loop.time(), utc_now(), http_status=exc.code)
        except Exception as exc:  # refused, reset, timeout, TLS, non-WebSocket answer...
            why = f"could not connect to {server.ws_url}: {type(exc).__name__}: {exc}"
            proto.connection_failed(why, loop.time(), utc_now())
        else:
            if proto.closing:
                await sock.close(timeout=1.0)
            else:
                self._process()  # frames that came with the upgrade may have queued requests
                await self._watch(sock)
        finally:
            self._socket = None
            sock.abort()
            self._process()

    async def _watch(self, sock: Socket) -> None:
        """Sleep until the socket closes or the protocol's deadline; let it judge."""
        loop, proto = asyncio.get_running_loop(), self._proto
        while not sock.closed.is_set():
            sock.wake_at = proto.deadline()
            timeout = None if sock.wake_at is None else max(0.0, sock.wake_at - loop.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(sock.wakeup.wait(), timeout)
            sock.wakeup.clear()
            proto.check_timeouts(loop.time(), utc_now())
            self._process()  # a ConnectionDead event aborts the socket
            if sock.dropped:
                return
        code, reason = (sock.ws.close_code, sock.ws.close_reason) if sock.ws else (None, None)
        proto.connection_closed(code, reason, loop.time(), utc_now())

    def _on_frame(self, sock: Socket, raw: str | bytes | None) -> None:
        if sock.dropped or sock is not self._socket:
            return
        if raw is None:
            sock.closed.set()
            sock.wakeup.set()
            return
        self._proto.receive_text(raw, asyncio.get_running_loop().time())
        deadline = self._proto.deadline()
        if deadline is not None and (sock.wake_at is None or deadline < sock.wake_at):
            sock.wakeup.set()  # e.g. the first connection_status: heartbeats from now on
        self._process()

    def _live(self) -> Socket | None:
        sock = self._socket
        return sock if sock is not None and self._proto.live and sock.writable else None

    # ------------------------------------------------------------------ protocol events

    def _process(self) -> None:
        """Carry out what the protocol decided, then write what it wants sent."""
        app = self._app
        for event in self._proto.events_received():
            if isinstance(event, Delivered):
                app.deliver(event.message, event.message.topic, queue=True)
            elif isinstance(event, ControlReceived):
                app.deliver(event.message, None, queue=self.options.control_messages)
            elif isinstance(event, RequestOutcome):
                self._resolve(event)
            elif isinstance(event, GapEvent):
                app.emit("gap", event, event.topic)
            elif isinstance(event, StateChange):
                self._on_state(event)
            elif isinstance(event, FetchAlerts):
                app.spawn(self._fill_alerts(event))
            elif isinstance(event, ConnectionDead):
                sock = self._socket
                if sock is not None and sock.link == event.connection:
                    sock.abort()
        sock = self._socket
        if sock is None or sock.ws is None or not sock.writable:
            return  # queued texts wait for the socket; a new connection discards them
        for text in self._proto.data_to_send():
            try:
                written = sock.ws.write_message(text)
            except WebSocketClosedError:
                return  # the close arrives through on_frame(None)
            written.add_done_callback(_ignore_write_error)

    def _on_state(self, change: StateChange) -> None:
        self._state_changed.set()
        if change.state is ConnectionState.DISCONNECTED:
            self._app.queued.set()  # async-for loops end
        self._app.emit("state", change, None)

    def _resolve(self, outcome: RequestOutcome) -> None:
        future = self._futures.pop(outcome.ticket, None)
        if future is None or future.done():
            return
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.ack)

    async def _outcome(self, ticket: int, timeout: float | None, what: str) -> Ack | None:
        """Wait for the ticket's outcome (or give up after the request timeout)."""
        future: asyncio.Future[Ack | None] = asyncio.get_running_loop().create_future()
        self._futures[ticket] = future
        self._process()
        limit = self.options.request_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer to {what} within {limit:g}s") from None
        finally:
            if not future.done():
                future.cancel()
                self._futures.pop(ticket, None)
                self._proto.forget(ticket)

    async def _fill_alerts(self, request: FetchAlerts) -> None:
        history: list[AlertPayload] | None = None
        error: str | None = None
        try:
            history = await self.fetch_alerts(request.since)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "rtstream: could not fill the alert gap of %s: %s", request.gap.topic, error
            )
        self._proto.receive_alert_history(request.gap, history, error)
        self._process()

    def _where(self) -> str:
        return self._server.ws_url if self._server is not None else "the discovered server"


def _ignore_write_error(written: asyncio.Future[None]) -> None:
    """A failed write means the connection is closing; its close frame tells the protocol."""
    if not written.cancelled():
        written.exception()
