"""The connection loop of :class:`~.stream.Stream`: the I/O half of the client.

It opens Tornado WebSockets (:mod:`.transport`), feeds frames and the loop's clock to the
:class:`~.protocol.ClientProtocol`, writes what the protocol wants sent, sleeps until its
next deadline, and carries out its events: callbacks and the ``async for`` queue
(:mod:`.dispatch`), the futures of ``subscribe``/``unsubscribe``/``ping``, alert gap fills
over REST. It decides nothing itself; :class:`~.stream.Stream` is the public face on top.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClosedError

from ..core.messages import Ack, AlertPayload, utc_now
from .discovery import ServerInfo, discover
from .dispatch import Dispatcher
from .errors import DiscoveryError, NotConnectedError, StreamClosed
from .events import ConnectionDead, ControlReceived, Delivered, FetchAlerts, RequestOutcome
from .lifecycle import log
from .options import StreamOptions
from .protocol import ClientProtocol
from .rest import RestAPI
from .state import ConnectionState, GapEvent, StateChange
from .transport import Socket, classify_open_error, describe_http_error


class Runner:
    """Runs one stream's connections; shared state with the stream is the protocol."""

    def __init__(
        self,
        proto: ClientProtocol,
        options: StreamOptions,
        app: Dispatcher,
        server: ServerInfo | None,
        lookup: tuple[str | None, str | None],
    ) -> None:
        self.proto = proto
        self.options = options
        self.app = app
        self.server_info = server
        #: ``discover()``'s arguments, when the server is still to be found.
        self.lookup = lookup
        #: Set on every state change (``wait_connected`` re-checks the state).
        self.state_changed = asyncio.Event()
        self.futures: dict[int, asyncio.Future[Ack | None]] = {}
        self.socket: Socket | None = None
        #: The backoff wait (tests swap in a fake clock).
        self.sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    @property
    def server(self) -> ServerInfo:
        if self.server_info is None:
            raise NotConnectedError("the server is not discovered yet: await wait_connected()")
        return self.server_info

    async def fetch_alerts(self, since: int = 0, symbol: str | None = None) -> list[AlertPayload]:
        """Every alert after ``since`` (of ``symbol``), paged; invalid items are counted."""
        api = RestAPI(
            server=self.server,
            timeout=self.options.request_timeout,
            validate_cert=self.options.validate_cert,
        )
        return await api.alert_history(since, symbol=symbol, on_invalid=self.proto.count_invalid)

    async def run(self) -> None:
        """The background task: discover if needed, then connect, watch, wait, repeat."""
        proto = self.proto
        try:
            if self.server_info is None:
                try:
                    self.server_info = await asyncio.to_thread(discover, *self.lookup)
                except (DiscoveryError, ValueError) as exc:
                    proto.finish(exc)
            while not proto.closing:
                await self._attempt()
                if proto.closing or proto.retry_delay is None:
                    break
                await self.sleep(proto.retry_delay)
        except asyncio.CancelledError:
            if not proto.closing:
                proto.finish(StreamClosed("the stream's task was cancelled"))
                self.process()
            raise
        except Exception as exc:  # a bug here must surface as a final state, not vanish
            log.exception("rtstream: client task failed")
            proto.finish(exc)
        else:
            proto.finish(proto.final_error)
        self.process()

    async def _attempt(self) -> None:
        """One connection: open it, then watch it until it ends or goes silent."""
        loop, proto, server = asyncio.get_running_loop(), self.proto, self.server
        sock = self.socket = Socket(proto.begin_attempt(loop.time()))
        try:
            await sock.open(server, self.options, lambda raw: self._on_frame(sock, raw))
        except Exception as exc:  # refused, reset, timeout, HTTP answer, TLS, non-WebSocket...
            failure = classify_open_error(exc)
            if isinstance(exc, HTTPClientError):
                why = describe_http_error(server, exc)
            else:
                why = f"could not connect to {server.ws_url}: {type(exc).__name__}: {exc}"
            proto.connection_failed(
                why,
                loop.time(),
                utc_now(),
                http_status=failure.http_status,
                retry_after=failure.retry_after,
                timeout=failure.timeout or failure.overload,
            )
        else:
            if proto.closing:
                await sock.close(timeout=1.0)
            else:
                self.process()  # frames that came with the upgrade may have queued requests
                await self._watch(sock)
        finally:
            self.socket = None
            sock.abort()
            self.process()

    async def _watch(self, sock: Socket) -> None:
        """Sleep until the socket closes or the protocol's deadline; let it judge."""
        loop, proto = asyncio.get_running_loop(), self.proto
        while not sock.closed.is_set():
            sock.wake_at = proto.deadline()
            timeout = None if sock.wake_at is None else max(0.0, sock.wake_at - loop.time())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(sock.wakeup.wait(), timeout)
            sock.wakeup.clear()
            proto.check_timeouts(loop.time(), utc_now())
            self.process()  # a ConnectionDead event aborts the socket
            if sock.dropped:
                return
        code, reason = (sock.ws.close_code, sock.ws.close_reason) if sock.ws else (None, None)
        proto.connection_closed(code, reason, loop.time(), utc_now())

    def _on_frame(self, sock: Socket, raw: str | bytes | None) -> None:
        if sock.dropped or sock is not self.socket:
            return
        if raw is None:
            sock.closed.set()
            sock.wakeup.set()
            return
        self.proto.receive_text(raw, asyncio.get_running_loop().time())
        deadline = self.proto.deadline()
        if deadline is not None and (sock.wake_at is None or deadline < sock.wake_at):
            sock.wakeup.set()  # e.g. the first connection_status: heartbeats from now on
        self.process()

    def process(self) -> None:
        """Carry out what the protocol decided, then write what it wants sent."""
        app = self.app
        for event in self.proto.events_received():
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
                sock = self.socket
                if sock is not None and sock.link == event.connection:
                    sock.abort()
        sock = self.socket
        if sock is None or sock.ws is None or not sock.writable:
            return  # queued texts wait for the socket; a new connection discards them
        for text in self.proto.data_to_send():
            try:
                written = sock.ws.write_message(text)
            except WebSocketClosedError:
                return  # the close arrives through on_frame(None)
            written.add_done_callback(_ignore_write_error)

    def _on_state(self, change: StateChange) -> None:
        self.state_changed.set()
        if change.state is ConnectionState.DISCONNECTED:
            self.app.queued.set()  # async-for loops end
        self.app.emit("state", change, None)

    def _resolve(self, outcome: RequestOutcome) -> None:
        future = self.futures.pop(outcome.ticket, None)
        if future is None or future.done():
            return
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            future.set_result(outcome.ack)

    async def outcome(self, ticket: int, timeout: float | None, what: str) -> Ack | None:
        """Wait for the ticket's outcome (or give up after the request timeout)."""
        future: asyncio.Future[Ack | None] = asyncio.get_running_loop().create_future()
        self.futures[ticket] = future
        self.process()
        limit = self.options.request_timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no answer to {what} within {limit:g}s") from None
        finally:
            if not future.done():
                future.cancel()
                self.futures.pop(ticket, None)
                self.proto.forget(ticket)

    async def _fill_alerts(self, request: FetchAlerts) -> None:
        history: list[AlertPayload] | None = None
        error: str | None = None
        try:
            history = await self.fetch_alerts(request.since, request.symbol)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "rtstream: could not fill the alert gap of %s: %s", request.gap.topic, error
            )
        self.proto.receive_alert_history(request, history, error)
        self.process()

    def where(self) -> str:
        return self.server_info.ws_url if self.server_info is not None else "the discovered server"


def _ignore_write_error(written: asyncio.Future[None]) -> None:
    """A failed write means the connection is closing; its close frame tells the protocol."""
    if not written.cancelled():
        written.exception()
