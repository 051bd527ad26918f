"""ClientProtocol back to back with the server's ServerSession and Hub, under Hypothesis.

No sockets: what the client wants sent goes straight into the server session; what the
server's outbox holds travels on a "wire" that the ``deliver`` rule empties in steps, so
publishes, unsubscribes, drops and restarts interleave with frames in flight. Time is one
fake clock shared by both sides. Alert history (the server's SQLite) is a list that
survives restarts and answers the protocol's FetchAlerts.

Invariants, per topic, on what the application sees:

* within an epoch, seqs of live deliveries strictly increase (no duplicates, no
  reordering), and they are consecutive unless the last subscribe ack was not a
  recovered resume: a plain subscribe (snapshot) or an unrecovered one;
* after a reconnect every subscription is renewed as a resume (its ack says ``recovered``
  true or false, never null), and every unrecovered one is reported by exactly one
  GapEvent for its topic;
* nothing is delivered for a topic the application has unsubscribed;
* every request gets at most one outcome, and once the system settles (connected, wire
  empty, alert fetches answered) every request has exactly one;
* once settled, every alert published on a topic while the application was subscribed
  (since its subscription's first ack) was delivered exactly once.
"""

from __future__ import annotations

import itertools
import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from jupyter_rtstream.client import ClientProtocol, GapEvent, StateChange, StreamOptions
from jupyter_rtstream.client.events import (
    ConnectionDead,
    ControlReceived,
    Delivered,
    FetchAlerts,
    RequestOutcome,
    StreamedMessage,
)
from jupyter_rtstream.core.errors import close_reason
from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.core.messages import (
    Ack,
    Alert,
    AlertPayload,
    MarketData,
    MarketDataPayload,
    utc_now,
)
from jupyter_rtstream.core.session import Limits, ServerSession

SYMBOLS = ("AAPL", "MSFT")
TOPICS = ("market_data:AAPL", "market_data:MSFT", "alerts:AAPL", "alerts:*")
WALL = datetime(2026, 1, 5, tzinfo=timezone.utc)
UNLIMITED = Limits(rate_limit=1e9, rate_burst=1_000_000)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class TopicView:
    """What the application saw on one topic, and what it is owed."""

    subscribed: bool = False
    #: The subscription had its first ack: alerts published from now on are owed.
    active: bool = False
    epoch: str | None = None
    last_seq: int | None = None
    contiguous: bool = False
    seen: set[tuple[str | None, int]] = field(default_factory=set)
    alert_ids: list[int] = field(default_factory=list)
    owed: set[int] = field(default_factory=set)
    unrecovered_acks: int = 0
    gaps: int = 0
    #: A new connection opened after the subscription's first ack: it must resume.
    renewing: bool = False


class ClientServerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.epochs = itertools.count(1)
        self.hub = self._new_hub()
        self.instruments = InstrumentRegistry(SYMBOLS)
        self.client = ClientProtocol(
            StreamOptions(rng=random.Random(0), backoff_base=0.1, backoff_cap=1.0)
        )
        self.session: ServerSession | None = None
        self.sessions = itertools.count(1)
        self.wire: deque[str] = deque()
        self.history: list[AlertPayload] = []
        self.alert_ids = itertools.count(1)
        #: Alert fetches not answered yet, with the subscription (view) they belong to.
        self.fetches: list[tuple[FetchAlerts, TopicView]] = []
        self.filling_view: TopicView | None = None
        self.views = {topic: TopicView() for topic in TOPICS}
        self.tickets: dict[int, str] = {}
        self.outcomes: dict[int, RequestOutcome] = {}
        self._open_connection()

    # ------------------------------------------------------------------ plumbing

    def _new_hub(self) -> Hub:
        return Hub(
            epoch=f"E{next(self.epochs)}",
            replay_messages=4,
            replay_seconds=1.0,
            replay_hard_limit=8,
            clock=self.clock,
        )

    def _open_connection(self) -> None:
        for view in self.views.values():
            view.renewing = view.active
        self.client.begin_attempt(self.clock.now)
        self.session = ServerSession(
            self.hub,
            self.instruments,
            f"c{next(self.sessions)}",
            limits=UNLIMITED,
            clock=self.clock,
            heartbeat_interval=1.0,
        )
        self.session.opened()
        self._pump()

    def _server_gone(self) -> None:
        if self.session is not None:
            self.session.closed()
        self.session = None
        self.wire.clear()

    def _pump(self) -> None:
        """Client texts to the server, then the server's answers onto the wire."""
        self._process()
        if self.session is not None:
            for text in self.client.data_to_send():
                self.session.receive_text(text)
            self.wire.extend(self.session.data_to_send())
        else:
            assert self.client.data_to_send() == [] or self.client.link is None

    def _process(self) -> None:
        for event in self.client.events_received():
            if isinstance(event, Delivered):
                self._delivered(event.message)
            elif isinstance(event, ControlReceived):
                if isinstance(event.message, Ack):
                    self._acked(event.message)
            elif isinstance(event, GapEvent):
                (self.filling_view or self.views[event.topic]).gaps += 1
            elif isinstance(event, RequestOutcome):
                assert event.ticket in self.tickets, event
                assert event.ticket not in self.outcomes, f"second outcome for {event}"
                assert (event.ack is None) or (event.error is None)
                self.outcomes[event.ticket] = event
            elif isinstance(event, FetchAlerts):
                self.fetches.append((event, self.views[event.gap.topic]))
            elif isinstance(event, ConnectionDead):
                self._server_gone()
            else:
                assert isinstance(event, StateChange)

    def _acked(self, ack: Ack) -> None:
        data = ack.data
        if data.action != "subscribe" or data.topic not in self.views:
            return
        view = self.views[data.topic]
        if not view.subscribed:
            return  # an ack for a subscription the application dropped since
        if view.renewing:
            assert data.recovered is not None, f"{data.topic} renewed without resume_from"
            view.renewing = False
        view.active = True
        if data.recovered is not True:
            view.contiguous = False
        if data.recovered is False:
            view.unrecovered_acks += 1

    def _delivered(self, message: StreamedMessage) -> None:
        assert isinstance(message, MarketData | Alert)
        view = self.views[message.topic]
        assert view.subscribed, f"{message.topic} #{message.seq} delivered after unsubscribe"
        if isinstance(message, Alert):
            alert_id = message.data.alert_id
            assert alert_id not in view.alert_ids, f"alert {alert_id} twice on {message.topic}"
            view.alert_ids.append(alert_id)
        if self.filling_view is not None:
            return  # from the REST history (seq 0) or held during the fill: no live seq
        epoch, seq = self.client.epoch, message.seq
        assert (epoch, seq) not in view.seen, f"duplicate {message.topic} {epoch}#{seq}"
        view.seen.add((epoch, seq))
        if view.epoch == epoch and view.last_seq is not None:
            assert seq > view.last_seq, (message.topic, view.last_seq, seq)
            if view.contiguous and isinstance(message, MarketData):
                assert seq == view.last_seq + 1, f"silent gap on {message.topic}"
        view.epoch, view.last_seq, view.contiguous = epoch, seq, True

    # ------------------------------------------------------------------ rules

    @rule(topic=st.sampled_from(TOPICS), flush=st.booleans())
    def subscribe(self, topic: str, flush: bool = False) -> None:
        kind, symbol = topic.split(":")
        if not self.views[topic].subscribed:
            self.views[topic] = TopicView(subscribed=True)
        self.tickets[self.client.subscribe(kind, symbol)] = topic
        self._pump()
        if flush:
            self.deliver(len(self.wire))

    @rule(topic=st.sampled_from(TOPICS))
    def unsubscribe(self, topic: str) -> None:
        kind, symbol = topic.split(":")
        self.views[topic] = TopicView()
        ticket = self.client.unsubscribe(kind, symbol)
        if ticket is not None:
            self.tickets[ticket] = topic
        self._pump()

    @precondition(lambda self: self.client.live)
    @rule()
    def ping(self) -> None:
        self.tickets[self.client.ping()] = "ping"
        self._pump()

    @rule(symbol=st.sampled_from(SYMBOLS), alert=st.booleans(), flush=st.booleans())
    def publish(self, symbol: str, alert: bool, flush: bool = False) -> None:
        now = utc_now()
        if alert:
            payload = AlertPayload(
                alert_id=next(self.alert_ids),
                rule_id=1,
                symbol=symbol,
                rule_name="r",
                condition="price_above",
                target_value=1.0,
                current_value=2.0,
                severity="low",
                message="m",
                timestamp=now,
            )
            self.history.append(payload)
            topic = f"alerts:{symbol}"
            self.hub.publish(Alert(topic=topic, timestamp=now, data=payload), also=["alerts:*"])
            for name in (topic, "alerts:*"):
                if name in self.views and self.views[name].active:
                    self.views[name].owed.add(payload.alert_id)
        else:
            data = MarketDataPayload(
                instrument_id=1, symbol=symbol, price=1.0, volume=1.0, timestamp=now
            )
            self.hub.publish(MarketData(topic=f"market_data:{symbol}", data=data))
        self._pump()
        if flush:
            self.deliver(len(self.wire))

    @rule(count=st.integers(1, 8))
    def deliver(self, count: int) -> None:
        self._pump()
        for _ in range(min(count, len(self.wire))):
            if not self.wire:  # a dead connection cleared it
                break
            self.client.receive_text(self.wire.popleft(), self.clock.now)
            self._pump()

    @rule(dt=st.sampled_from([0.3, 0.9, 1.7]))
    def advance_time(self, dt: float) -> None:
        """Time passes: the server heartbeats; a client that got nothing for 2 s gives up."""
        self.clock.now += dt
        if self.session is not None:
            self.session.heartbeat()
        self.client.check_timeouts(self.clock.now, WALL)
        self._pump()

    @rule(code=st.sampled_from([None, 1001, 1013]))
    def drop_connection(self, code: int | None) -> None:
        if self.client.link is None:
            return
        reason = None
        if code == 1001:
            reason = close_reason("SERVER_SHUTDOWN", 0.5)
        elif code == 1013:
            reason = close_reason("SLOW_CONSUMER", 0.2)
        self._server_gone()
        self.client.connection_closed(code, reason, self.clock.now, WALL)
        self._pump()

    @rule()
    def restart_server(self) -> None:
        """The server process restarts: new epoch, empty buffers; alert history persists."""
        self.drop_connection(1001)
        self.hub = self._new_hub()

    @rule(
        publishes=st.lists(st.tuples(st.sampled_from(SYMBOLS), st.booleans()), max_size=10),
        restart=st.booleans(),
    )
    def outage(self, publishes: list[tuple[str, bool]], restart: bool) -> None:
        """Cut, publish while the client is away (maybe past the replay buffer), maybe
        restart the server, reconnect: the shape of every resume and gap."""
        self.drop_connection(None)
        for symbol, alert in publishes:
            self.publish(symbol, alert)
        if restart:
            self.hub = self._new_hub()
        if self.client.link is None and self.client.retry_delay is not None:
            self.reconnect()

    @precondition(lambda self: self.client.link is None and self.client.retry_delay is not None)
    @rule()
    def reconnect(self) -> None:
        assert self.client.retry_delay is not None
        self.clock.now += self.client.retry_delay
        self._open_connection()

    @precondition(lambda self: bool(self.fetches))
    @rule(ok=st.booleans())
    def answer_alert_fetch(self, ok: bool) -> None:
        fetch, self.filling_view = self.fetches.pop(0)
        history = [p for p in self.history if p.alert_id > fetch.since] if ok else None
        if not ok:
            self.filling_view.owed.clear()  # reported as fill_error: those are lost
        try:
            self.client.receive_alert_history(fetch, history, None if ok else "HTTP 500")
            self._process()
        finally:
            self.filling_view = None
        self._pump()

    @rule()
    def settle(self) -> None:
        """Reconnect, drain the wire and answer every fetch; then everything is accounted for."""
        for _ in range(20):
            if self.client.link is None and self.client.retry_delay is not None:
                self.reconnect()
            self.deliver(1000)
            while self.fetches:
                self.answer_alert_fetch(True)
            if self.client.live and not self.wire and not self.fetches:
                break
        assert self.client.live and not self.wire and not self.fetches
        assert set(self.tickets) == set(self.outcomes), "a request got no outcome"
        for topic, view in self.views.items():
            assert view.gaps == view.unrecovered_acks, (topic, view)
            missing = view.owed - set(view.alert_ids)
            assert not missing, f"alerts {sorted(missing)} never delivered on {topic}"

    # ------------------------------------------------------------------ invariants

    @invariant()
    def books_agree(self) -> None:
        """The protocol renews exactly what the application asked for (nothing is refused)."""
        subscribed = {topic for topic, view in self.views.items() if view.subscribed}
        assert set(self.client.book.topics) == subscribed

    @invariant()
    def never_finished(self) -> None:
        assert not self.client.finished
        assert self.client.next_retry_at is None or self.client.next_retry_at >= WALL
        assert self.client.next_retry_at is None or (
            self.client.next_retry_at <= WALL + timedelta(seconds=1.0)
        )


ClientServerMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestClientServer = ClientServerMachine.TestCase
