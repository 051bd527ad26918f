"""The asyncio client: a thin I/O adapter around :class:`~.protocol.ClientProtocol`.

::

    stream = await jupyter_rtstream.connect()          # discovery, first connection
    stream.on("market_data", print, topic="market_data:AAPL")
    await stream.subscribe("market_data", "AAPL")      # -> the server's Ack
    async for message in stream:                       # streamed messages, in order
        ...
    await stream.close()

The split: :mod:`.protocol` takes every decision (what to send, what to deliver, when a
connection is dead, how long to wait before retrying, which gap to report);
:mod:`.runner` only moves bytes and time (opens WebSockets through :mod:`.transport`, feeds
frames and the loop's clock to the protocol, writes what it returns, sleeps until its next
deadline, turns its events into callbacks and futures); this module is the public face:
``connect``, :class:`Stream` and its awaitables.

Everything runs on the running event loop (a plain ``asyncio.run`` script or ipykernel's
loop): no threads except discovery's file reads (``asyncio.to_thread``), no blocking calls,
none in a constructor. ``Stream(...).start()`` starts the background task without awaiting
anything (top-level ``await`` is optional in a notebook).

How the stream reconnects, resumes and reports gaps is decided in :mod:`.protocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from ..core.messages import Ack, AlertPayload
from .discovery import ServerInfo, discover
from .dispatch import EVENTS, Callback, Dispatcher
from .errors import NotConnectedError, StreamClosed
from .health import Health
from .options import StreamOptions
from .protocol import ClientProtocol
from .runner import Runner
from .state import CloseInfo, ConnectionState, StreamStats

if TYPE_CHECKING:  # pandas is optional: .frames is imported when a frame is asked for
    from .frames import FrameSet, LiveFrame

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

    Observable state: :attr:`state` (:class:`ConnectionState`), :attr:`status_text`,
    :attr:`attempts`, :attr:`last_error`, :attr:`last_close`, :attr:`next_retry_at`, and
    ``on("state", cb)``.
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
    status_text = _Mirror[str](
        "Why the stream is in its state, for people: 'connected', 'server not reachable, "
        "retrying', 'server busy (close 1013), retrying in 12 s', 'refused: 403'..."
    )
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
        self._proto = ClientProtocol(self.options)
        self._app = Dispatcher(self._proto.stats, self.options.queue_size)
        self._runner = Runner(self._proto, self.options, self._app, server, (url, token))
        self._task: asyncio.Task[None] | None = None
        if on_state_change is not None:
            self.on("state", on_state_change)

    @property
    def server(self) -> ServerInfo:
        """Where this stream connects (known once discovery ran, if it had to run)."""
        return self._runner.server

    @property
    def _sleep(self) -> Callable[[float], Awaitable[None]]:
        """The backoff wait (tests swap in a fake clock)."""
        return self._runner.sleep

    @_sleep.setter
    def _sleep(self, sleep: Callable[[float], Awaitable[None]]) -> None:
        self._runner.sleep = sleep

    @property
    def attempts(self) -> int:
        """Failed attempts of the current outage (0 while connected). The overload backoff
        escalation is separate and only resets after a stable connection."""
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
                self._runner.run(), name=f"rtstream-client {self._runner.where()}"
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
                    f"no connection to {self._runner.where()} after {timeout:g}s "
                    f"({self.attempts} failed attempts; last error: {self.last_error})"
                )
            changed = self._runner.state_changed
            changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(changed.wait(), remaining)

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
        ack = await self._runner.outcome(ticket, timeout, f"subscribe {topic}")
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
            self._runner.process()
            return None
        _, topic = self._proto.requests.open[ticket]
        return await self._runner.outcome(ticket, timeout, f"unsubscribe {topic}")

    async def ping(self, *, timeout: float | None = None) -> float:
        """Round trip of a ``ping`` request to its ``ack``, in seconds."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._runner.outcome(self._proto.ping(), timeout, "ping")
        rtt = loop.time() - started
        self._proto.health.round_trip(rtt, loop.time())
        return rtt

    def health(self) -> Health:
        """Last round trip (``ping()``) and, per subscribed topic, the age of its last message
        and whether it has been silent for more than three of its usual intervals."""
        # The runner stamps messages with loop.time(): asyncio's clock is time.monotonic().
        return self._proto.health.snapshot(time.monotonic(), self.subscriptions)

    async def close(self) -> None:
        """Close for good (no reconnection): closing handshake, then the task ends."""
        if self._proto.closing:
            if self._task is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(self._task)
            return
        self._proto.close()
        task, sock = self._task, self._runner.socket
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
        self._runner.process()

    async def fetch_alerts(self, since: int = 0, symbol: str | None = None) -> list[AlertPayload]:
        """The alert history after ``since`` (of ``symbol``, if given), oldest first: every
        page of ``GET rtstream/api/alerts?since=<alert_id>&limit=``."""
        return await self._runner.fetch_alerts(since, symbol)

    async def frame(
        self, symbol: str, kind: str = "market_data", *, window: int = 5_000, history: bool = True
    ) -> LiveFrame:
        """A live pandas DataFrame of ``kind`` for ``symbol``: the history the server holds
        (up to ``window`` rows), then every new message; see :mod:`.frames`. Needs the
        ``jupyter-rtstream[pandas]`` extra."""
        from .frames import open_frame

        return await open_frame(self, symbol, kind, window=window, history=history)

    async def frames(
        self,
        symbols: Sequence[str],
        kind: str = "market_data",
        *,
        window: int = 5_000,
        history: bool = True,
    ) -> FrameSet:
        """:meth:`frame` for each symbol: a ``FrameSet`` (a dict by symbol; ``.df`` is one
        DataFrame with a ``(symbol, time)`` MultiIndex)."""
        from .frames import open_frames

        return await open_frames(self, symbols, kind, window=window, history=history)

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
        info = self._runner.server_info
        where = info.url if info is not None else "(not discovered yet)"
        return (
            f"<Stream {where} {self.state.value} attempts={self.attempts} "
            f"subscriptions={self.subscriptions}>"
        )
