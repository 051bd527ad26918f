"""The client side of the rtstream protocol, sans-I/O: every decision, no sockets, no clock.

:class:`ClientProtocol` is to :class:`~.stream.Stream` what python-websockets'
``protocol.py`` is to its asyncio connection. The adapter reports what happened, with the
time it happened (``now``: a monotonic float; ``wall``: a UTC datetime, only where a time is
shown to people), and carries out what the protocol returns:

- inputs: :meth:`~ClientProtocol.begin_attempt`, :meth:`~ClientProtocol.connection_failed`,
  :meth:`~ClientProtocol.receive_text`, :meth:`~ClientProtocol.connection_closed`,
  :meth:`~ClientProtocol.check_timeouts`, :meth:`~ClientProtocol.receive_alert_history`, and
  the application's :meth:`~ClientProtocol.subscribe` / ``unsubscribe`` / ``ping`` / ``close``;
- outputs: :meth:`~ClientProtocol.events_received` (:mod:`.events`: messages to deliver,
  request outcomes, gaps, state changes, "fetch the alert history", "drop this socket"),
  :meth:`~ClientProtocol.data_to_send` (texts for the live connection),
  :meth:`~ClientProtocol.deadline` (when to call ``check_timeouts`` next) and
  :attr:`~ClientProtocol.retry_delay` (how long to wait before the next attempt).

It owns the connection state machine and reconnect policy (:mod:`.state`), the
subscriptions and resume positions (:class:`~.state.SubscriptionBook`), the request/ack
table (:mod:`.requests`), heartbeat deadlines, gap detection and alert gap filling,
version checks and invalid-frame counting.

Reconnection: when a connection ends (a close, a network cut, or no frame for
``missed_heartbeats`` heartbeat intervals: a half-open socket), the next attempt waits a
full-jitter backoff delay (at least the close's ``retry_after``); the attempt counter resets
when a ``connection_status`` arrives. Every subscription is then renewed with ``resume_from``
and ``epoch``; replayed duplicates are dropped, so each message is delivered once, in order.
An unrecoverable resume (``ack.recovered`` false) becomes a :class:`~.state.GapEvent`, after
the alert history fills the gap on alert topics. HTTP 401/403 on the upgrade is final.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..core.codec import decode_server, encode
from ..core.errors import ProtocolError
from ..core.messages import (
    PROTOCOL_MAJOR,
    Ack,
    AlertPayload,
    ConnectionStatus,
    Error,
    Ping,
    ServerMessage,
    StreamedMessage,
    Unsubscribe,
    topic_for,
)
from ..core.vocabulary import normalize_symbol
from .errors import (
    AuthenticationError,
    ConnectionLost,
    NotConnectedError,
    RequestError,
    StreamClosed,
)
from .events import (
    ConnectionDead,
    ControlReceived,
    Delivered,
    Event,
    FetchAlerts,
)
from .options import StreamOptions
from .requests import RequestTable
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
)

log = logging.getLogger("jupyter_rtstream.client")

PROTOCOL_MAJOR_TEXT = str(PROTOCOL_MAJOR)
#: HTTP answers to the upgrade that retrying cannot fix.
FINAL_HTTP = frozenset({401, 403})
#: Refusals that mean "wrong URL / not this server" before we ever connected.
WRONG_ENDPOINT_HTTP = frozenset({400, 404})
#: The ``last_close`` of a connection replaced because it went silent.
HEARTBEAT_TIMEOUT = "heartbeat timeout"


@dataclass
class Link:
    """One connection attempt and what its ``connection_status`` told us."""

    id: int
    opened_at: float
    last_received: float
    statuses: int = 0
    epoch: str | None = None
    heartbeat_interval: float | None = None


class ClientProtocol:
    """Protocol state of one stream across all its connections (see the module docstring)."""

    def __init__(self, options: StreamOptions | None = None) -> None:
        self.options = o = options or StreamOptions()
        self.stats = StreamStats()
        self.policy = ReconnectPolicy(o.backoff_base, o.backoff_cap, o.backoff_factor, o.rng)
        self.book = SubscriptionBook(self.stats)
        self.requests = RequestTable()
        self.state = ConnectionState.CONNECTING
        #: Why the last connection or attempt ended (or the final error).
        self.last_error: BaseException | None = None
        #: The last close the server sent, or a heartbeat timeout; failed attempts keep it.
        self.last_close: CloseInfo | None = None
        self.next_retry_at: datetime | None = None
        #: Wait before the next attempt (None: no attempt is scheduled).
        self.retry_delay: float | None = None
        #: Monotonic time of the next attempt (meaningful while ``retry_delay`` is set).
        self.retry_at: float | None = None
        self.epoch: str | None = None
        self.client_id: str | None = None
        self.heartbeat_interval: float | None = None
        self.conflated = 0
        #: close() was called or a final error happened: never reconnect again.
        self.closing = False
        self.final_error: BaseException | None = None
        self.link: Link | None = None
        self._link_ids = 0
        self._connected_once = False
        self._events: list[Event] = []
        self._outgoing: list[str] = []

    # ------------------------------------------------------------------ outputs

    def events_received(self) -> list[Event]:
        """Decisions taken since the last call, in order (see :mod:`.events`)."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """Texts to write, in order, on the live connection."""
        texts, self._outgoing = self._outgoing, []
        return texts

    def deadline(self) -> float | None:
        """When :meth:`check_timeouts` must run next (None: nothing to watch)."""
        link = self.link
        if link is None:
            return None
        if link.statuses == 0:
            return link.opened_at + self.options.open_timeout
        interval = self._interval(link)
        if interval <= 0:  # the server sends no heartbeats: only closes tell
            return None
        return link.last_received + self.options.missed_heartbeats * interval

    @property
    def live(self) -> bool:
        """A connection is open and its ``connection_status`` arrived: requests can go."""
        return self.link is not None and self.link.statuses > 0

    @property
    def finished(self) -> bool:
        return self.state is ConnectionState.DISCONNECTED

    def raise_if_final(self) -> None:
        if self.final_error is not None:
            raise self.final_error
        if self.closing:
            raise StreamClosed("the stream is closed")

    # ------------------------------------------------------------------ connection inputs

    def begin_attempt(self, now: float) -> int:
        """A connection attempt starts (its open timeout runs from ``now``); returns its id."""
        self._end_link(None)
        self._link_ids += 1
        self.link = Link(self._link_ids, now, now)
        self.stats.connection_attempts += 1
        self.retry_delay = self.retry_at = None
        self.next_retry_at = None
        return self._link_ids

    def connection_failed(
        self, description: str, now: float, wall: datetime, *, http_status: int | None = None
    ) -> None:
        """The attempt never opened (refused, reset, timeout, or the upgrade was refused)."""
        self._end_link(None)
        if http_status in FINAL_HTTP:
            self.finish(AuthenticationError(description, http_status or 0))
            return
        self.last_error = ConnectionLost(description)
        if http_status in WRONG_ENDPOINT_HTTP and not self._connected_once:
            self.finish(StreamClosed(description))
            return
        self._schedule_retry(None, now, wall)

    def connection_closed(
        self, code: int | None, reason: str | None, now: float, wall: datetime
    ) -> CloseInfo:
        """The open connection ended: a close frame (``code``), or the socket just died."""
        close = CloseInfo.parse(code, reason)
        if self.link is None:
            return close
        if not self.closing:  # our own close() is no news
            self.last_error = ConnectionLost(str(close))
            if code is not None:
                self.last_close = close
        self._end_link(None)
        self._schedule_retry(close.retry_after, now, wall)
        return close

    def check_timeouts(self, now: float, wall: datetime) -> None:
        """Declare the connection dead when its deadline passed (emits :class:`ConnectionDead`)."""
        link, deadline = self.link, self.deadline()
        if link is None or deadline is None or now < deadline:
            return
        if link.statuses == 0:
            why = f"no connection_status within {self.options.open_timeout:g}s"
        else:
            why = f"no message for {self.options.missed_heartbeats:g} heartbeat intervals"
            self.last_close = CloseInfo(None, HEARTBEAT_TIMEOUT)
        self.last_error = ConnectionLost(
            f"dead connection: {why} ({now - link.last_received:.1f}s)"
        )
        log.warning("rtstream: %s; replacing it", self.last_error)
        self._events.append(ConnectionDead(link.id, why))
        self._end_link(None)
        self._schedule_retry(None, now, wall)

    def close(self) -> None:
        """The application closes the stream: no reconnection, closes are expected now."""
        self.closing = True
        self.retry_delay = self.retry_at = None

    def finish(self, error: BaseException | None) -> None:
        """Enter the final ``disconnected`` state; every open request fails."""
        if self.finished:
            return
        if error is not None:
            self.final_error = self.last_error = error
        self.closing = True
        self.retry_delay = self.retry_at = None
        self.next_retry_at = None
        failure = error or StreamClosed("the stream is closed")
        self._end_link(failure)
        self._events.extend(self.requests.fail_all(failure))
        self._set_state(ConnectionState.DISCONNECTED)
        if error is not None:
            level = logging.DEBUG if type(error) is StreamClosed else logging.ERROR
            log.log(level, "rtstream: stream stopped: %s", error)

    # ------------------------------------------------------------------ application inputs

    def subscribe(self, kind: str, symbol: str) -> int:
        """Remember the subscription (renewed after reconnects) and ask for it if live;
        returns the ticket its :class:`~.events.RequestOutcome` will carry."""
        self.raise_if_final()
        state = self.book.add(kind, symbol)
        ticket = self.requests.new_ticket("subscribe", state.topic)
        if self.live:
            self._send_subscribe(state)
        return ticket

    def unsubscribe(self, kind: str, symbol: str) -> int | None:
        """Forget the subscription; a ticket when an ``unsubscribe`` went to a live
        connection, else None (the server forgets the subscriptions of closed connections)."""
        topic = topic_for(normalize_kind(kind), normalize_symbol(symbol))
        self.book.remove(topic)
        refusal = RequestError("UNSUBSCRIBED", f"{topic} was unsubscribed")
        self._events.extend(self.requests.resolve_topic(topic, error=refusal))
        link = self.link
        if link is None or link.statuses == 0:
            return None
        kind_, symbol_ = topic.split(":", 1)
        ticket = self.requests.new_ticket("unsubscribe", topic)
        request_id = self.requests.send("unsubscribe", topic, link.id, ticket)
        request = Unsubscribe.model_validate(
            {"subscription_type": kind_, "symbol": symbol_, "request_id": request_id}
        )
        self._outgoing.append(encode(request))
        return ticket

    def ping(self) -> int:
        """Send a ``ping``; its ticket is answered by the server's ack."""
        self.raise_if_final()
        link = self.link
        if link is None or link.statuses == 0:
            raise NotConnectedError(f"cannot ping while {self.state.value}")
        ticket = self.requests.new_ticket("ping", None)
        request_id = self.requests.send("ping", None, link.id, ticket)
        self._outgoing.append(encode(Ping(request_id=request_id)))
        return ticket

    def forget(self, ticket: int) -> None:
        """The application stopped waiting for ``ticket`` (its own timeout)."""
        self.requests.forget(ticket)

    # ------------------------------------------------------------------ frames

    def receive_text(self, raw: str | bytes, now: float) -> None:
        """One frame of the current connection (bytes: a binary frame, which is invalid)."""
        link = self.link
        if link is None:
            return
        link.last_received = now
        self.stats.frames += 1
        if isinstance(raw, bytes):
            self.count_invalid("binary frame (the protocol is JSON text frames)")
            return
        message = decode_server(raw)
        if isinstance(message, ProtocolError):
            self.count_invalid(str(message))
            return
        if message.version.split(".", 1)[0] != PROTOCOL_MAJOR_TEXT:
            # core's server models accept any version string; this client speaks 1.x only.
            self.count_invalid(f"UNSUPPORTED_VERSION: {message.version[:20]!r} (this client: 1.x)")
            return
        try:
            self._on_message(link, message)
        except Exception:  # never let a bug in handling one message kill the connection
            log.exception("rtstream: failed to handle a %s message", message.message_type)

    def count_invalid(self, why: str) -> None:
        self.stats.invalid_frames += 1
        self.stats.last_invalid = why
        count = self.stats.invalid_frames
        if count <= 10 or count % 1000 == 0:
            log.warning("rtstream: ignored invalid frame #%d: %s", count, why[:200])

    def _on_message(self, link: Link, message: ServerMessage) -> None:
        if isinstance(message, ConnectionStatus):
            self._on_status(link, message)
            self._events.append(ControlReceived(message))
        elif isinstance(message, Ack):
            self._on_ack(link, message)
            self._events.append(ControlReceived(message))
        elif isinstance(message, Error):
            self._on_error(message)
            self._events.append(ControlReceived(message))
        elif self.book.accept(message, link.epoch):
            self._deliver(message)

    def _on_status(self, link: Link, status: ConnectionStatus) -> None:
        data = status.data
        link.statuses += 1
        link.epoch, link.heartbeat_interval = data.epoch, data.heartbeat_interval
        self.epoch, self.client_id = data.epoch, data.client_id
        self.heartbeat_interval = data.heartbeat_interval
        self.conflated = data.conflated
        if link.statuses > 1:
            return
        if self._connected_once:
            self.stats.reconnects += 1
        self._connected_once = True
        self.policy.reset()
        self.next_retry_at = None
        self._set_state(ConnectionState.CONNECTED)
        log.info("rtstream: connected (epoch %s)", data.epoch)
        for state in self.book:
            self._send_subscribe(state)

    def _on_ack(self, link: Link, ack: Ack) -> None:
        sent = self.requests.answered(ack.data.request_id)
        if sent is not None and sent.ticket is not None:
            outcome = self.requests.resolve(sent.ticket, ack=ack)
            if outcome is not None:
                self._events.append(outcome)
        if ack.data.action != "subscribe" or ack.data.topic is None:
            return
        topic = ack.data.topic
        gap = self.book.on_subscribe_ack(ack, link.epoch)
        self._events.extend(self.requests.resolve_topic(topic, ack=ack))
        if gap is None:
            return
        state = self.book.topics.get(topic)
        log.info("rtstream: %s not recovered (%s)", topic, gap.reason)
        if state is not None and state.is_alerts and self.options.alert_gap_fill:
            self._events.append(FetchAlerts(gap, self.book.fill_since(state)))
            return
        if state is not None:
            state.filling = None
        self._events.append(gap)

    def _on_error(self, error: Error) -> None:
        data = error.data
        sent = self.requests.answered(data.request_id)
        exc = RequestError(str(data.error_code), data.error_message, data.request_id)
        if sent is None:
            log.warning("rtstream: server error %s", exc)
            return
        if sent.ticket is not None:
            outcome = self.requests.resolve(sent.ticket, error=exc)
            if outcome is not None:
                self._events.append(outcome)
        if sent.action == "subscribe" and sent.topic is not None:
            if sent.topic not in self.requests.topic_waiters:
                log.warning("rtstream: the server refused to renew %s: %s", sent.topic, exc)
            state = self.book.topics.get(sent.topic)
            if state is not None and not state.acked:
                self.book.remove(sent.topic)  # refused before it ever worked: forget it
            self._events.extend(self.requests.resolve_topic(sent.topic, error=exc))

    def _deliver(self, message: StreamedMessage) -> None:
        self.stats.delivered += 1
        self._events.append(Delivered(message))

    # ------------------------------------------------------------------ alert gap fill

    def receive_alert_history(
        self, gap: GapEvent, history: list[AlertPayload] | None, error: str | None = None
    ) -> None:
        """The answer to a :class:`~.events.FetchAlerts` (``history`` None when it failed):
        deliver the missed alerts merged with the live ones held meanwhile, then the gap."""
        alerts, filled = self.book.complete_fill(gap.topic, history)
        for alert in alerts:
            self._deliver(alert)
        done = replace(gap, filled=filled if history is not None else None, fill_error=error)
        self._events.append(done)

    # ------------------------------------------------------------------ internals

    def _interval(self, link: Link) -> float:
        interval = link.heartbeat_interval
        return self.options.heartbeat_interval if interval is None else interval

    def _send_subscribe(self, state: TopicState) -> None:
        link = self.link
        if link is None:
            return
        request_id = self.requests.send("subscribe", state.topic, link.id)
        self._outgoing.append(encode(self.book.subscribe_request(state, request_id)))

    def _end_link(self, error: BaseException | None) -> None:
        link, self.link = self.link, None
        self._outgoing.clear()
        if link is not None:
            self._events.extend(self.requests.connection_ended(link.id, error))

    def _schedule_retry(self, retry_after: float | None, now: float, wall: datetime) -> None:
        if self.closing or self.final_error is not None:
            return
        delay = self.policy.next_delay(retry_after)
        self.retry_delay = delay
        self.retry_at = now + delay
        self.next_retry_at = wall + timedelta(seconds=delay)
        self._set_state(ConnectionState.RECONNECTING, notify_always=True)
        log.info(
            "rtstream: %s; reconnecting in %.2fs (attempt %d)",
            self.last_error,
            delay,
            self.policy.attempts,
        )

    def _set_state(self, state: ConnectionState, *, notify_always: bool = False) -> None:
        previous = self.state
        if previous is state and not notify_always:
            return
        self.state = state
        change = StateChange(
            state, previous, self.policy.attempts, self.last_error, self.next_retry_at
        )
        self._events.append(change)
