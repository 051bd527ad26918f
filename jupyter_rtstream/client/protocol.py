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

Reconnection: every failure (refused, reset, HTTP answer, close frame, timeout, a silent
connection) is classified and timed by :class:`~jupyter_rtstream.core.backoff.ReconnectPolicy`
(quick jittered retries while nothing listens, full-jitter exponential backoff on overload
signals, final on refusals); its overload level resets only after a connection stayed up
``stable_after`` seconds. Every subscription is then renewed with ``resume_from`` and
``epoch``; replayed duplicates are dropped, so each message is delivered once, in order.
An unrecoverable resume (``ack.recovered`` false) becomes a :class:`~.state.GapEvent`, after
the alert history fills the gap on alert topics. Wire values are not trusted: heartbeat
intervals and ``retry_after`` are clamped, frames over ``max_message_size`` are refused.
"""

from __future__ import annotations

from dataclasses import replace

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
    NotConnectedError,
    RequestError,
)
from .events import (
    ControlReceived,
    Delivered,
    FetchAlerts,
)
from .health import HealthTracker
from .lifecycle import ConnectionLifecycle, Link, log
from .options import StreamOptions, clamp_heartbeat
from .state import ConnectionState
from .subscriptions import SubscriptionBook, TopicState, normalize_kind

PROTOCOL_MAJOR_TEXT = str(PROTOCOL_MAJOR)


class ClientProtocol(ConnectionLifecycle):
    """Protocol state of one stream across all its connections (see the module docstring)."""

    def __init__(self, options: StreamOptions | None = None) -> None:
        super().__init__(options)
        self.book = SubscriptionBook(self.stats)
        #: Round trips and per-topic message times (:meth:`~.health.HealthTracker.snapshot`).
        self.health = HealthTracker()

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
        self._check_stable(link, now)
        if link.broken is not None:
            return  # condemned: the next check_timeouts drops it
        if len(raw) > self.options.max_message_size:
            # The transport bounds frames too; this keeps any adapter honest. A server that
            # sends one is broken or hostile: the connection is due for a drop at once
            # (deadline() says so), and the retry backs off as from an overload.
            self.count_invalid(f"frame of {len(raw)} bytes over max_message_size")
            link.broken = f"a frame over max_message_size ({self.options.max_message_size} B)"
            return
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
            self._on_message(link, message, now)
        except Exception:  # never let a bug in handling one message kill the connection
            log.exception("rtstream: failed to handle a %s message", message.message_type)

    def count_invalid(self, why: str) -> None:
        self.stats.invalid_frames += 1
        self.stats.last_invalid = why
        count = self.stats.invalid_frames
        if count <= 10 or count % 1000 == 0:
            log.warning("rtstream: ignored invalid frame #%d: %s", count, why[:200])

    def _on_message(self, link: Link, message: ServerMessage, now: float) -> None:
        if isinstance(message, ConnectionStatus):
            self._on_status(link, message, now)
            self._events.append(ControlReceived(message))
        elif isinstance(message, Ack):
            self._on_ack(link, message)
            self._events.append(ControlReceived(message))
        elif isinstance(message, Error):
            self._on_error(message)
            self._events.append(ControlReceived(message))
        elif self.book.accept(message, link.epoch):
            self.health.message(message.topic, now)
            self._deliver(message)

    def _on_status(self, link: Link, status: ConnectionStatus, now: float) -> None:
        data = status.data
        link.statuses += 1
        heartbeat = clamp_heartbeat(data.heartbeat_interval)
        link.epoch, link.heartbeat_interval = data.epoch, heartbeat
        self.epoch, self.client_id = data.epoch, data.client_id
        self.heartbeat_interval = heartbeat
        self.conflated = data.conflated
        if link.statuses > 1:
            return
        if self._connected_once:
            self.stats.reconnects += 1
        self._connected_once = True
        link.connected_at = now
        self.policy.connected()  # the outage is over; the overload level waits for stability
        self.next_retry_at = None
        self.last_failure = None
        self.status_text = "connected"
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
        if state is not None and state.fill is not None and self.options.alert_gap_fill:
            symbol = None if state.symbol == "*" else state.symbol
            fetch = FetchAlerts(
                gap, state.fill_since, symbol, state.generation, state.fill, link.epoch
            )
            self._events.append(fetch)
            return
        self.book.cancel_fill(topic)
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
        self, request: FetchAlerts, history: list[AlertPayload] | None, error: str | None = None
    ) -> None:
        """The answer to a :class:`~.events.FetchAlerts` (``history`` None when it failed):
        deliver the missed alerts merged with the live ones held meanwhile, then the gap.

        A stale answer delivers nothing: for a subscription that was since replaced it is
        dropped; when a newer gap on the same subscription took over, its gap is still told
        (``fill_error`` says so) and the newer fill delivers the alerts."""
        gap = request.gap
        merged = self.book.complete_fill(
            gap.topic,
            history,
            generation=request.generation,
            fill=request.fill,
            epoch=request.epoch,
        )
        if merged is None:
            if self.book.is_current(gap.topic, request.generation):
                self._events.append(replace(gap, fill_error="superseded by a newer gap fill"))
            return
        alerts, filled = merged
        for alert in alerts:
            self._deliver(alert)
        done = replace(gap, filled=filled if history is not None else None, fill_error=error)
        self._events.append(done)

    # ------------------------------------------------------------------ internals

    def _send_subscribe(self, state: TopicState) -> None:
        link = self.link
        if link is None:
            return
        request_id = self.requests.send("subscribe", state.topic, link.id)
        self._outgoing.append(encode(self.book.subscribe_request(state, request_id)))
