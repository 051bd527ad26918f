"""Hypothesis state machine over the Hub and its outboxes.

Clients subscribe, unsubscribe, drain, drop and reconnect with resume while market data and
alerts are published, with tiny outbox bounds so that conflation and 1013 closes happen.
Like :class:`~jupyter_rtstream.core.session.ServerSession`, every (un)subscribe pushes a
must-deliver control frame (the ``ack``; here a marker) before the replay/snapshot frames, so
the drained stream tells which subscription each data frame belongs to.

Invariants, per client and topic:

* within one subscription (from its ack to the ack of the unsubscribe), seqs strictly
  increase and the sum of the gaps equals the number of frames the outbox conflated on that
  topic meanwhile (the base is the resume point for a recovered resume, the snapshot for a
  fresh subscribe or an unrecovered resume, else the topic's seq at subscribe time);
  alerts are never conflated, so alert seqs are consecutive;
* no frame of a topic arrives between the ack of its unsubscribe and the next subscribe;
* every alert published while the client was subscribed is received once its outbox is
  drained, as long as the connection is open; across a 1013 close that holds after a
  ``recovered: true`` resume (an unrecovered one hands the gap to the alerts REST API);
* a resume is recovered exactly when the epoch matches and the buffer covers the gap, and
  then replays exactly the gap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from jupyter_rtstream.core.hub import Hub, SubscribeResult
from jupyter_rtstream.core.outbox import Frame, Outbox

from ._samples import FakeClock, alert, market_data

EPOCH = "E1"
SYMBOLS = ("AAPL", "MSFT")
TOPICS = (
    "market_data:AAPL",
    "market_data:MSFT",
    "alerts:AAPL",
    "alerts:MSFT",
    "alerts:*",
)
CLIENTS = ("a", "b", "c")
SLOW_CONSUMER = {"reason": "SLOW_CONSUMER", "retry_after": 1.0}


@dataclass(eq=False)
class Segment:
    """One subscription of one client to one topic, as seen in its drained stream."""

    topic: str
    base: int
    counter_start: int
    prev: int = 0
    gaps: int = 0
    counter_end: int | None = None

    def __post_init__(self) -> None:
        self.prev = self.base


@dataclass
class Client:
    subscribed: set[str] = field(default_factory=set)
    #: Subscription in effect at the hub (set by the rules).
    hub_segment: dict[str, Segment] = field(default_factory=dict)
    #: Subscription in effect in the drained stream (set by the markers).
    stream_segment: dict[str, Segment | None] = field(default_factory=dict)
    last_seen: dict[str, int] = field(default_factory=dict)
    received: dict[str, set[int]] = field(default_factory=dict)
    #: Alert seqs this client must receive (published while it was subscribed).
    required: dict[str, set[int]] = field(default_factory=dict)


class HubMachine(RuleBasedStateMachine):
    HUB_KWARGS: dict[str, int] = {"outbox_max_messages": 8, "outbox_max_bytes": 1 << 20}

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.hub = Hub(
            epoch=EPOCH,
            replay_messages=4,
            replay_seconds=1.0,
            replay_hard_limit=8,
            clock=self.clock,
            **self.HUB_KWARGS,
        )
        self.markers: dict[str, tuple[str, Segment]] = {}
        self.clients = {cid: Client() for cid in CLIENTS}
        for cid in CLIENTS:
            self.hub.connect(cid)

    # ------------------------------------------------------------------ helpers

    def _box(self, cid: str) -> Outbox:
        return self.hub.clients[cid]

    def _marker(self, cid: str, kind: str, segment: Segment) -> None:
        key = f"#{len(self.markers)}"
        self.markers[key] = (kind, segment)
        self._box(cid).push_text(key)

    def _start_segment(
        self, cid: str, topic: str, result: SubscribeResult, counter_start: int
    ) -> None:
        """Record the subscription, then queue its ack marker and its frames (ack first)."""
        client = self.clients[cid]
        hub_topic = self.hub.topics[topic]
        if result.recovered:
            base = result.frames[0].seq - 1 if result.frames else hub_topic.seq
        elif result.frames:
            assert result.snapshot
            assert len(result.frames) == 1
            assert result.frames[0] is self.hub.latest(topic)
            assert hub_topic.conflatable
            base = result.frames[0].seq - 1
        else:
            assert not result.snapshot
            assert not hub_topic.conflatable or not hub_topic.buffer
            base = hub_topic.seq
        if not result.recovered:
            # Nothing is owed from before a fresh subscription (alerts: the REST API fills it).
            client.required[topic] = set()
        segment = Segment(topic, base, counter_start)
        client.hub_segment[topic] = segment
        client.subscribed.add(topic)
        self._marker(cid, "sub", segment)
        box = self._box(cid)
        for frame in result.frames:
            box.push(frame)

    def _process(self, cid: str, frames: list[Frame]) -> None:
        client = self.clients[cid]
        for frame in frames:
            if frame.topic is None:
                kind, segment = self.markers[frame.text]
                if kind == "sub":
                    client.stream_segment[segment.topic] = segment
                else:
                    assert client.stream_segment.get(segment.topic) is segment
                    assert segment.counter_end is not None
                    assert segment.gaps == segment.counter_end - segment.counter_start, (
                        "unexplained gap",
                        segment,
                    )
                    client.stream_segment[segment.topic] = None
                continue
            topic = frame.topic
            current = client.stream_segment.get(topic)
            assert current is not None, f"{cid} got {topic} #{frame.seq} while unsubscribed"
            assert frame.seq > current.prev, (cid, topic, frame.seq, current)
            if not frame.conflatable:
                assert frame.seq == current.prev + 1, f"alert gap on {topic} for {cid}"
            current.gaps += frame.seq - current.prev - 1
            current.prev = frame.seq
            client.received.setdefault(topic, set()).add(frame.seq)
            client.last_seen[topic] = max(client.last_seen.get(topic, 0), frame.seq)
            doc = json.loads(frame.text)
            assert (doc["topic"], doc["seq"]) == (topic, frame.seq)

    def _check_caught_up(self, cid: str) -> None:
        """After a full drain of an open connection, the stream is consistent and complete."""
        client = self.clients[cid]
        box = self._box(cid)
        for topic in client.subscribed:
            segment = client.stream_segment.get(topic)
            assert segment is client.hub_segment[topic]
            assert segment.gaps == box.conflated_by_topic[topic] - segment.counter_start, (
                "unexplained gap",
                cid,
                segment,
                box.conflated_by_topic[topic],
            )
            missing = client.required.get(topic, set()) - client.received.get(topic, set())
            assert not missing, f"{cid} never received alerts {sorted(missing)} on {topic}"

    # ------------------------------------------------------------------ rules

    @rule(cid=st.sampled_from(CLIENTS), topic=st.sampled_from(TOPICS))
    def toggle_subscription(self, cid: str, topic: str) -> None:
        box = self._box(cid)
        if box.close_request is not None:
            return  # the client is being disconnected; it can send nothing
        client = self.clients[cid]
        if topic in client.subscribed:
            assert self.hub.unsubscribe(cid, topic)
            segment = client.hub_segment.pop(topic)
            segment.counter_end = box.conflated_by_topic[topic]
            client.subscribed.discard(topic)
            client.required.pop(topic, None)
            self._marker(cid, "unsub", segment)
        else:
            counter_start = box.conflated_by_topic[topic]
            result = self.hub.subscribe(cid, topic)
            assert result.recovered is None
            self._start_segment(cid, topic, result, counter_start)

    @rule(cid=st.sampled_from(CLIENTS), topic=st.sampled_from(TOPICS))
    def resubscribe(self, cid: str, topic: str) -> None:
        """Unsubscribe and subscribe again before anything is drained (a client's re-sync)."""
        if topic not in self.clients[cid].subscribed:
            self.toggle_subscription(cid, topic)
        self.toggle_subscription(cid, topic)
        self.toggle_subscription(cid, topic)

    @rule(symbol=st.sampled_from(SYMBOLS), n=st.integers(min_value=1, max_value=10))
    def publish_market_data(self, symbol: str, n: int) -> None:
        for i in range(n):
            self.hub.publish(market_data(symbol, 100.0 + i))

    @rule(symbol=st.sampled_from(SYMBOLS), n=st.integers(min_value=1, max_value=4))
    def publish_alerts(self, symbol: str, n: int) -> None:
        topics = (f"alerts:{symbol}", "alerts:*")
        for i in range(n):
            self.hub.publish(alert(symbol, alert_id=i), also=[topics[1]])
            for client in self.clients.values():
                for topic in topics:
                    if topic in client.subscribed:
                        seq = self.hub.topics[topic].seq
                        client.required.setdefault(topic, set()).add(seq)

    @rule(seconds=st.sampled_from([0.1, 0.4, 2.0]))
    def tick(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(cid=st.sampled_from(CLIENTS))
    def drain(self, cid: str) -> None:
        box = self._box(cid)
        self._process(cid, box.drain_frames())
        if box.close_request is None:
            self._check_caught_up(cid)
        else:
            event("drained a closed outbox")

    @rule(
        cid=st.sampled_from(CLIENTS),
        drain_first=st.booleans(),
        wrong_epoch=st.sampled_from([False, False, False, True]),
    )
    def reconnect(self, cid: str, drain_first: bool, wrong_epoch: bool) -> None:
        """The connection drops (or is closed 1013); the client reconnects and resumes."""
        old = self._box(cid)
        if drain_first:
            self._process(cid, old.drain_frames())
        if old.close_request is not None:
            event("reconnect after 1013")
        self.hub.disconnect(cid)
        assert cid not in self.hub.clients
        client = self.clients[cid]
        client.hub_segment.clear()
        client.stream_segment.clear()
        topics = sorted(client.subscribed)
        client.subscribed.clear()
        box = self.hub.connect(cid)
        epoch = "E0" if wrong_epoch else EPOCH
        for topic in topics:
            resume_from = client.last_seen.get(topic)
            result = self.hub.subscribe(cid, topic, resume_from=resume_from, epoch=epoch)
            hub_topic = self.hub.topics[topic]
            if resume_from is None:
                assert result.recovered is None
            else:
                buffer = hub_topic.buffer
                coverable = resume_from == hub_topic.seq or (
                    resume_from < hub_topic.seq and buffer[0][0] <= resume_from + 1
                )
                # A must-deliver gap that would not fit in half the new outbox is handed to
                # the history API instead (else every resume would end in 1013 again).
                gap = [Frame(text) for seq, _, text in buffer if seq > resume_from]
                fits = hub_topic.conflatable or (
                    len(gap) <= box.max_messages // 2
                    and sum(f.nbytes for f in gap) <= box.max_bytes // 2
                )
                assert result.recovered == (not wrong_epoch and coverable and fits)
                if result.recovered:
                    event("recovered resume")
                    assert [f.seq for f in result.frames] == list(
                        range(resume_from + 1, hub_topic.seq + 1)
                    )
                    assert result.replayed == len(result.frames)
                else:
                    event("unrecovered resume")
            self._start_segment(cid, topic, result, box.conflated_by_topic[topic])

    # ------------------------------------------------------------------ invariants

    @invariant()
    def hub_and_model_agree(self) -> None:
        for cid, client in self.clients.items():
            box = self._box(cid)
            assert box.subscriptions == client.subscribed
            for topic in TOPICS:
                hub_topic = self.hub.topics.get(topic)
                if hub_topic is not None:
                    assert (cid in hub_topic.subscribers) == (topic in client.subscribed)
            assert not any(t.startswith("alerts:") for t in box.conflated_by_topic)
            assert box.conflated == sum(box.conflated_by_topic.values())
            if box.close_request is not None:
                assert box.close_request.code == 1013
                assert json.loads(box.close_request.reason) == SLOW_CONSUMER
                assert len(box) == 0
            if box.conflated:
                event("conflated")

    @invariant()
    def replay_buffers_are_bounded_and_contiguous(self) -> None:
        for hub_topic in self.hub.topics.values():
            seqs = [seq for seq, _, _ in hub_topic.buffer]
            assert len(seqs) <= self.hub.replay_hard_limit
            if seqs:
                assert seqs == list(range(seqs[0], hub_topic.seq + 1))


class HubMachineByteBound(HubMachine):
    """Same machine, the outbox bounded by bytes (about 6 market data frames)."""

    HUB_KWARGS = {"outbox_max_messages": 10_000, "outbox_max_bytes": 6 * 380}


_SETTINGS = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

TestHubStateMachine = HubMachine.TestCase
TestHubStateMachine.settings = _SETTINGS
TestHubStateMachineByteBound = HubMachineByteBound.TestCase
TestHubStateMachineByteBound.settings = _SETTINGS
