"""The hub: topics, sequence numbers, replay buffers and per-client outboxes (sans-I/O).

Publishing is paid once per message, not once per client: :meth:`Hub.publish` assigns the
topic's next ``seq``, serializes the message once into a :class:`Frame`, stores it in the
topic's replay buffer, and appends the *same* frame object to every subscriber's outbox.
Nothing here touches a socket. The I/O shell registers a ``waker`` per client, is called
when that client's outbox goes from empty to non-empty, and then drains it with
:meth:`Outbox.drain`.

Slow consumers: every outbox is bounded and conflates market data for a lagging client,
never alerts (see :mod:`.outbox`).

Relaying (a server on the Redis bus): :meth:`Hub.relay` takes a message whose ``seq`` and
``epoch`` were assigned by the feed service, so every server fans out the same message with
the same seq; :meth:`Hub.adopt_epoch` takes the feed's epoch and :meth:`Hub.backfill` puts
older entries (read back from the bus) in front of a topic's replay buffer.

Watching (issue 19: cost follows what is watched): a publisher asks :meth:`Hub.wants`
before it builds a message. A topic is *watched* while it has subscribers and for
``replay_seconds`` after its last one left (so a client that reconnects within the replay
window resumes without loss); nobody pays for the messages of the others. Messages that
were not built still leave their mark: the publisher numbers the next one past them
(:meth:`Hub.advance`), and the replay buffer starts afresh there, so no resume across the
unbuilt stretch claims ``recovered``. The first subscriber of a topic that is not watched
calls :attr:`Hub.on_watch` first, so the publisher can put the topic's current state in
(the snapshot built on demand).
"""

from __future__ import annotations

import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

from .codec import encode
from .history import select
from .messages import StreamedMessage
from .outbox import Frame, Outbox
from .vocabulary import SUBSCRIPTION_TYPES, FeedState, SubscriptionType, split_topic

#: Subscription types whose frames may be conflated (latest wins) for a lagging client:
#: every one but ``alerts``, which are events that must all be delivered.
CONFLATABLE_KINDS: frozenset[SubscriptionType] = frozenset(SUBSCRIPTION_TYPES) - {"alerts"}


@dataclass(frozen=True, slots=True)
class SubscribeResult:
    """What a subscribe did: ``recovered`` is None for a plain subscribe, else the resume's
    outcome; ``frames`` are the replayed (or snapshot) frames to send after the ack."""

    recovered: bool | None
    frames: list[Frame]
    replayed: int
    snapshot: bool
    #: The topic's last seq when subscribed (frames published later have greater ones).
    seq: int = 0


#: A replay buffer entry: ``(seq, created, text)``. A tuple of atomic values is untracked by
#: the cyclic GC after its first collection, so a buffer of 100,000s of messages costs no GC
#: traversal (as ``Frame`` objects it made every full collection walk them all).
_Buffered = tuple[int, float, str]


@dataclass
class _Topic:
    name: str
    kind: str
    conflatable: bool
    seq: int = 0
    buffer: deque[_Buffered] = field(default_factory=deque)
    #: Seeded history (:meth:`Hub.seed`): kept apart from ``buffer`` so the replay policy
    #: never trims it; bounded by the server's ``history_ticks`` (and ``replay_hard_limit``).
    seeded: deque[_Buffered] = field(default_factory=deque)
    last: Frame | None = None
    subscribers: dict[str, Outbox] = field(default_factory=dict)
    published: int = 0
    #: Seqs come from the feed (:meth:`Hub.relay`), not from this hub.
    relayed: bool = False
    #: ``clock()`` until which the topic stays watched after its last subscriber left.
    watched_until: float = 0.0


class Hub:
    """Topics and outboxes for every connected client of one server process."""

    def __init__(
        self,
        *,
        epoch: str | None = None,
        replay_messages: int = 1000,
        replay_seconds: float = 60.0,
        replay_hard_limit: int = 100_000,
        outbox_max_bytes: int = 1 << 20,
        outbox_max_messages: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.epoch = epoch or f"{int(time.time()):x}-{secrets.token_hex(4)}"
        self.replay_messages = replay_messages
        self.replay_seconds = replay_seconds
        self.replay_hard_limit = max(replay_hard_limit, replay_messages)
        self.outbox_max_bytes = outbox_max_bytes
        self.outbox_max_messages = outbox_max_messages
        self.clock = clock
        self.topics: dict[str, _Topic] = {}
        self.clients: dict[str, Outbox] = {}
        self.published = 0
        self.fanned_out = 0
        #: Frames conflated for clients that have since disconnected (``conflated_total``).
        self.conflated_gone = 0
        #: True once the epoch is the feed's (:meth:`adopt_epoch`): topics this hub numbers
        #: itself (alerts) then never resume across servers, whose seqs differ.
        self.relaying = False
        #: Health of the feed as the I/O shell sees it (``"ok"`` or ``"degraded"``).
        self.feed_state: FeedState = "ok"
        #: Called with a topic's name when a client subscribes to it while it is not
        #: watched (:meth:`wants`), before the snapshot is taken: the publisher puts the
        #: topic's current state in. Not called for relayed topics (the feed builds those).
        self.on_watch: Callable[[str], None] | None = None
        #: Topics that are or were watched (pruned by :meth:`watched`), by name.
        self._watched: dict[str, _Topic] = {}

    # ------------------------------------------------------------------ clients

    def connect(self, client_id: str, waker: Callable[[], None] | None = None) -> Outbox:
        outbox = Outbox(
            client_id,
            max_bytes=self.outbox_max_bytes,
            max_messages=self.outbox_max_messages,
            waker=waker,
        )
        self.clients[client_id] = outbox
        return outbox

    def disconnect(self, client_id: str) -> None:
        outbox = self.clients.pop(client_id, None)
        if outbox is None:
            return
        self.conflated_gone += outbox.conflated
        for name in outbox.subscriptions:
            topic = self.topics.get(name)
            if topic is not None:
                self._leave(topic, client_id)
        outbox.subscriptions.clear()

    def _leave(self, topic: _Topic, client_id: str) -> None:
        if topic.subscribers.pop(client_id, None) is not None and not topic.subscribers:
            topic.watched_until = self.clock() + self.replay_seconds

    # ------------------------------------------------------------------ subscriptions

    def topic(self, name: str) -> _Topic:
        topic = self.topics.get(name)
        if topic is None:
            kind, _ = split_topic(name)
            topic = _Topic(name, kind, kind in CONFLATABLE_KINDS)
            self.topics[name] = topic
        return topic

    def subscribe(
        self,
        client_id: str,
        name: str,
        *,
        resume_from: int | None = None,
        epoch: str | None = None,
    ) -> SubscribeResult:
        """Register a subscription; return the frames to send after the ``ack``.

        With ``resume_from`` and this hub's ``epoch``: every buffered frame after that seq
        (``recovered=True``) when the buffer still covers the gap. Otherwise, and for a plain
        subscribe, a snapshot: the topic's latest frame (none for alert topics, which are
        events; their gap is filled from the persisted history).
        """
        outbox = self.clients[client_id]
        topic = self.topic(name)
        if self.on_watch is not None and not topic.relayed and not self._is_watched(topic):
            self.on_watch(name)
        self._watched[name] = topic
        outbox.forget_topic(name)
        outbox.subscriptions.add(name)
        topic.subscribers[client_id] = outbox
        recovered: bool | None = None
        if resume_from is not None:
            recovered = self.covers(name, resume_from, epoch)
            if recovered:
                frames = [
                    Frame(text, name, seq, created, topic.conflatable)
                    for seq, created, text in topic.buffer
                    if seq > resume_from
                ]
                if topic.conflatable or self._fits(outbox, frames):
                    return SubscribeResult(True, frames, len(frames), False, topic.seq)
                # A must-deliver gap larger than the outbox would close the client with 1013
                # on every resume; say "not recovered" so it fills the gap from history.
                recovered = False
        if topic.conflatable and topic.last is not None:
            return SubscribeResult(recovered, [topic.last], 0, True, topic.seq)
        return SubscribeResult(recovered, [], 0, False, topic.seq)

    @staticmethod
    def _fits(outbox: Outbox, frames: list[Frame]) -> bool:
        """Whether ``frames`` fit in half the outbox (leaving room for live traffic)."""
        if len(frames) > outbox.max_messages // 2:
            return False
        return sum(f.nbytes for f in frames) <= outbox.max_bytes // 2

    def covers(self, name: str, resume_from: int, epoch: str | None) -> bool:
        """Whether a resume of ``name`` after ``resume_from`` (in ``epoch``) can be served
        from the replay buffer as it is now."""
        topic = self.topic(name)
        if epoch != self.epoch or (self.relaying and not topic.relayed):
            return False
        return self._covers(topic, resume_from)

    @staticmethod
    def _covers(topic: _Topic, resume_from: int) -> bool:
        if resume_from > topic.seq:
            return False  # a seq from the future: not this epoch's history
        if resume_from == topic.seq:
            return True
        return bool(topic.buffer) and topic.buffer[0][0] <= resume_from + 1

    def unsubscribe(self, client_id: str, name: str) -> bool:
        outbox = self.clients.get(client_id)
        if outbox is None or name not in outbox.subscriptions:
            return False
        outbox.subscriptions.discard(name)
        outbox.forget_topic(name)
        topic = self.topics.get(name)
        if topic is not None:
            self._leave(topic, client_id)
        return True

    # ------------------------------------------------------------------ watching

    def _is_watched(self, topic: _Topic) -> bool:
        return bool(topic.subscribers) or topic.watched_until > self.clock()

    def wants(self, name: str) -> bool:
        """Whether a message for topic ``name`` should be built and published now: it has
        subscribers, or had one within ``replay_seconds``."""
        topic = self.topics.get(name)
        return topic is not None and (bool(topic.subscribers) or topic.watched_until > self.clock())

    def advance(self, name: str, seq: int) -> None:
        """Number the next message of topic ``name`` ``seq`` when that is past the next
        seq: the seqs between belong to messages that were never built. The replay buffer
        restarts there (it only holds contiguous seqs), so no resume spans the hole."""
        topic = self.topic(name)
        if seq - 1 > topic.seq:
            topic.seq = seq - 1
            topic.buffer.clear()

    def watched(self, kind: str | None = None) -> list[str]:
        """Names of the topics watched now (of subscription type ``kind``, or all)."""
        names = []
        for name, topic in list(self._watched.items()):
            if not self._is_watched(topic):
                del self._watched[name]
            elif kind is None or topic.kind == kind:
                names.append(name)
        return names

    # ------------------------------------------------------------------ publishing

    def publish(self, message: StreamedMessage, also: Iterable[str] = ()) -> Frame:
        """Assign the next seq of ``message.topic``, serialize once, buffer and fan out.

        ``also`` names extra topics (e.g. ``alerts:*``) that receive the message as their own
        frame with their own seq.
        """
        frame = self._publish_one(message.topic, message)
        for extra in also:
            self._publish_one(extra, message.model_copy(update={"topic": extra}))
        return frame

    def publish_parts(self, name: str, head: str, tail: str) -> Frame:
        """Like :meth:`publish` for a message serialized by its producer around its seq:
        the frame is ``head + str(seq) + tail``, which must be exactly what ``encode``
        gives for the message with that seq (:mod:`.prebuilt` builds such parts; its
        tests hold it to that). No model is built: our own producers' hot path."""
        topic = self.topic(name)
        seq = topic.seq = topic.seq + 1
        return self._fan_out(topic, seq, f"{head}{seq}{tail}")

    def _publish_one(self, name: str, message: StreamedMessage) -> Frame:
        topic = self.topic(name)
        topic.seq += 1
        message.seq = topic.seq
        return self._fan_out(topic, topic.seq, encode(message))

    def _fan_out(self, topic: _Topic, seq: int, text: str) -> Frame:
        """Buffer the message numbered ``seq`` and queue its one frame for every subscriber."""
        now = self.clock()
        frame = Frame(text, topic.name, seq, now, topic.conflatable)
        topic.last = frame
        buffer = topic.buffer
        buffer.append((seq, now, text))
        if len(buffer) > self.replay_messages:
            self._trim(buffer, now)
        topic.published += 1
        self.published += 1
        subscribers = topic.subscribers
        for outbox in subscribers.values():
            outbox.push(frame)
        self.fanned_out += len(subscribers)
        return frame

    def relay(self, name: str, seq: int, text: str) -> tuple[Frame | None, bool]:
        """Fan out a message numbered by the feed (``text`` is its wire form, with ``seq``).

        Returns ``(frame, gap)``: ``frame`` is None for a duplicate (``seq`` not above the
        topic's), and ``gap`` is True when seqs were skipped: the replay buffer then restarts
        at ``seq`` (it only ever holds contiguous seqs) and the shell tells the subscribers.
        """
        topic = self.topic(name)
        topic.relayed = True
        if seq <= topic.seq:
            return None, False
        gap = topic.seq > 0 and seq != topic.seq + 1
        if gap:
            topic.buffer.clear()
        topic.seq = seq
        now = self.clock()
        frame = Frame(text, name, seq, now, topic.conflatable)
        topic.last = frame
        buffer = topic.buffer
        buffer.append((seq, now, text))
        if len(buffer) > self.replay_messages:
            self._trim(buffer, now)
        topic.published += 1
        self.published += 1
        subscribers = topic.subscribers
        for outbox in subscribers.values():
            outbox.push(frame)
        self.fanned_out += len(subscribers)
        return frame, gap

    def close_subscribers(self, name: str, code: int, reason: str) -> int:
        """Ask every subscriber of ``name`` to close (e.g. 1013 after a relayed gap: they
        resume, and the ack says ``recovered: false``). Returns how many."""
        topic = self.topics.get(name)
        outboxes = list(topic.subscribers.values()) if topic is not None else []
        for outbox in outboxes:
            outbox.request_close(code, reason)
        return len(outboxes)

    def adopt_epoch(self, epoch: str) -> bool:
        """Take the feed's epoch; when it differs from the current one, relayed topics start
        over (seq 0, empty buffers: their seqs belong to the old epoch). True if changed."""
        self.relaying = True
        if epoch == self.epoch:
            return False
        self.epoch = epoch
        for topic in self.topics.values():
            if topic.relayed:
                topic.seq = 0
                topic.buffer.clear()
                topic.seeded.clear()
                topic.last = None
        return True

    def backfill(self, name: str, entries: Iterable[tuple[int, str]]) -> int:
        """Put older relayed entries ``(seq, text)``, ascending, in front of the replay
        buffer: only those that extend it contiguously backwards (the last one must be just
        before the buffer's first seq, or the topic's seq when the buffer is empty), at most
        ``replay_hard_limit`` in all. Returns how many were added."""
        topic = self.topic(name)
        head = topic.buffer[0][0] if topic.buffer else topic.seq + 1
        older = [(seq, text) for seq, text in entries if seq < head]
        if not older or older[-1][0] != head - 1:
            return 0
        if any(b[0] != a[0] + 1 for a, b in pairwise(older)):
            return 0
        room = self.replay_hard_limit - len(topic.buffer)
        older = older[-room:] if room > 0 else []
        now = self.clock()
        topic.buffer.extendleft((seq, now, text) for seq, text in reversed(older))
        return len(older)

    def seed(self, message: StreamedMessage) -> int:
        """Record a message of the seeded history (before any subscriber): it takes the
        topic's next seq and stays readable through :meth:`history`, but is never replayed
        on resume (it is not in the replay buffer) nor sent to anyone. The newest one is the
        topic's snapshot until a live message comes. Returns its seq."""
        topic = self.topic(message.topic)
        topic.seq += 1
        message.seq = topic.seq
        now = self.clock()
        text = encode(message)
        topic.seeded.append((topic.seq, now, text))
        topic.last = Frame(text, topic.name, topic.seq, now, topic.conflatable)
        if len(topic.seeded) > self.replay_hard_limit:
            topic.seeded.popleft()
        return topic.seq

    def history(
        self,
        name: str,
        *,
        since_seq: int | None = None,
        since_time: datetime | None = None,
        limit: int = 1000,
    ) -> list[str]:
        """What the hub still holds of topic ``name`` (seeded history, then the replay
        buffer), oldest first, as the serialized messages: those with ``seq > since_seq``
        and published at or after ``since_time``, at most ``limit``. Seqs are increasing;
        a jump between two items means the messages between them are no longer held."""
        topic = self.topics.get(name)
        if topic is None:
            return []
        return select(topic.seeded, topic.buffer, since_seq, since_time, limit)

    def last_seq(self, name: str) -> int:
        """The last seq assigned on topic ``name`` (0 if none yet)."""
        topic = self.topics.get(name)
        return topic.seq if topic is not None else 0

    def _trim(self, buffer: deque[_Buffered], now: float) -> int:
        """Drop what the replay policy no longer keeps (see :meth:`trim`); return how many."""
        before = len(buffer)
        while len(buffer) > self.replay_messages and (
            now - buffer[0][1] > self.replay_seconds or len(buffer) > self.replay_hard_limit
        ):
            buffer.popleft()
        return before - len(buffer)

    def trim(self) -> int:
        """Apply the replay policy to every topic now (a timer calls it), so a topic that
        stopped publishing does not keep a burst's worth of frames forever."""
        now = self.clock()
        return sum(self._trim(t.buffer, now) for t in self.topics.values())

    def release(self, name: str) -> bool:
        """Free an idle topic's replay buffer and snapshot; its ``seq`` goes on (never
        reused within the epoch). Refused (False) while the topic has subscribers."""
        topic = self.topics.get(name)
        if topic is None or topic.subscribers:
            return False
        if not topic.buffer and not topic.seeded and topic.last is None:
            return False
        topic.buffer.clear()
        topic.seeded.clear()
        topic.last = None
        return True

    def latest(self, name: str) -> Frame | None:
        topic = self.topics.get(name)
        return topic.last if topic is not None else None

    # ------------------------------------------------------------------ stats

    @property
    def conflated(self) -> int:
        return sum(o.conflated for o in self.clients.values())

    def status(self) -> dict[str, Any]:
        """What the status API shows of the hub: ``epoch``, ``topics`` (seq, subscribers,
        buffered), ``clients`` by id (subscriptions, conflation, queue, delivered) and
        ``counters``; plain JSON-ready values, so the I/O shell never reads hub internals."""
        return {
            "epoch": self.epoch,
            "topics": [
                {
                    "topic": t.name,
                    "seq": t.seq,
                    "subscribers": len(t.subscribers),
                    "buffered": len(t.buffer),
                }
                for t in self.topics.values()
            ],
            "clients": {
                client_id: {
                    "subscriptions": sorted(o.subscriptions),
                    "conflated": o.conflated,
                    "queued_bytes": o.nbytes,
                    "delivered": o.delivered,
                }
                for client_id, o in self.clients.items()
            },
            "counters": self.stats(),
        }

    def stats(self) -> dict[str, int]:
        return {
            "published": self.published,
            "fanned_out": self.fanned_out,
            "clients": len(self.clients),
            "topics": len(self.topics),
            "conflated": self.conflated,
            "conflated_total": self.conflated_gone + self.conflated,
            "queued_bytes": sum(o.nbytes for o in self.clients.values()),
        }
