"""Subscriptions and their resume positions; what reaches the application (pure).

:class:`SubscriptionBook` keeps the subscriptions to restore after a reconnect, with the
position reached in each topic. It builds the resuming ``subscribe`` requests and decides,
per streamed message, whether to deliver it:

- market data & co. are de-duplicated by ``(epoch, seq)``: a ``seq`` at or below the last one
  seen in the same epoch is a replayed duplicate;
- alerts also by ``(epoch, alert_id)``. The epoch is the one of the server that *served*
  the alert (a live frame, or the alert history fetched from it). Within one server process
  the ids come from one store and only grow; across a restart the store may be the same
  (ids go on) or a fresh one (ids start again at 1), and a bare ``alert_id`` watermark would
  then throw away every new alert as an old duplicate.

Where to resume when nothing was seen yet: the subscribe ``ack`` carries the topic's
``seq`` at that moment (and, on alert topics, the newest ``alert_id`` in the history), so a
resume asks for what came after the subscription, not for the whole replay buffer or the
whole alert history. Servers that do not send them get the older behaviour (whole buffer,
filtered by the ack's time).

Alert gap fills are asynchronous (a REST request): each one carries the subscription's
``generation`` and its own ``fill`` number, so an answer that arrives after the topic was
unsubscribed and subscribed again, or after a newer gap replaced it, is not delivered into
the wrong subscription.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from ..core.messages import (
    SUBSCRIPTION_TYPES,
    Ack,
    Alert,
    AlertPayload,
    StreamedMessage,
    Subscribe,
    SubscriptionType,
    topic_for,
)
from .state import GapEvent, GapReason, StreamStats


def normalize_kind(kind: str) -> SubscriptionType:
    for known in SUBSCRIPTION_TYPES:
        if kind == known:
            return known
    raise ValueError(f"unknown subscription kind {kind!r}; expected one of {SUBSCRIPTION_TYPES}")


@dataclass
class TopicState:
    """One subscription and how far we got in it."""

    kind: SubscriptionType
    symbol: str
    topic: str
    #: Unique per subscription (a new one after unsubscribe + subscribe).
    generation: int = 0
    #: Last seq delivered, and the epoch it belongs to.
    last_seq: int | None = None
    epoch: str | None = None
    #: The topic's seq in the last ack (``epoch``'s): where to resume if nothing was seen.
    ack_seq: int | None = None
    #: The server acknowledged this subscription at least once (then resubscribes resume).
    acked: bool = False
    #: Server time of the first ack: alerts older than this predate the subscription.
    subscribed_at: datetime | None = None
    #: Highest alert_id delivered (or known to predate us), in ``alert_epoch``'s id space.
    last_alert_id: int | None = None
    alert_epoch: str | None = None
    #: The server's alert store (``ack.store_id``) of the last ack: ids are comparable only
    #: within one store.
    alert_store: str | None = None
    #: While an alert gap is being filled from the REST history, live alerts wait here.
    filling: list[Alert] | None = None
    #: Number of the pending fill (None: none), and the ``since`` it asks for.
    fill: int | None = None
    fill_since: int = 0
    #: What the pending (re)subscribe asked for, to describe a gap.
    sent_resume_from: int | None = None
    sent_epoch: str | None = None

    @property
    def is_alerts(self) -> bool:
        return self.kind == "alerts"


class SubscriptionBook:
    """Subscriptions and their resume positions; decides what reaches the application."""

    def __init__(self, stats: StreamStats | None = None) -> None:
        self.topics: dict[str, TopicState] = {}
        self.stats = stats or StreamStats()
        self._generations = itertools.count(1)
        self._fills = itertools.count(1)

    def __contains__(self, topic: object) -> bool:
        return topic in self.topics

    def __iter__(self) -> Iterator[TopicState]:
        return iter(list(self.topics.values()))

    def add(self, kind: str, symbol: str) -> TopicState:
        """Remember a subscription; ``ValueError`` for a kind or symbol the protocol refuses."""
        k = normalize_kind(kind)
        try:
            s = Subscribe(subscription_type=k, symbol=symbol).symbol or ""
        except ValidationError as exc:
            errors = "; ".join(e["msg"] for e in exc.errors(include_url=False))
            raise ValueError(f"invalid subscription {kind}:{symbol!r}: {errors}") from None
        topic = topic_for(k, s)
        state = self.topics.get(topic)
        if state is None:
            state = self.topics[topic] = TopicState(k, s, topic, next(self._generations))
        return state

    def remove(self, topic: str) -> TopicState | None:
        return self.topics.pop(topic, None)

    def subscribe_request(self, state: TopicState, request_id: str) -> Subscribe:
        """A plain subscribe the first time; a resuming one once the server acked it."""
        resume_from: int | None = None
        epoch: str | None = None
        if state.acked and state.epoch is not None:
            resume_from = state.last_seq
            if resume_from is None:  # nothing seen: from where the server placed us
                resume_from = state.ack_seq if state.ack_seq is not None else 0
            epoch = state.epoch
        state.sent_resume_from, state.sent_epoch = resume_from, epoch
        return Subscribe(
            subscription_type=state.kind,
            symbol=state.symbol,
            request_id=request_id,
            resume_from=resume_from,
            epoch=epoch,
        )

    def on_subscribe_ack(self, ack: Ack, epoch: str | None) -> GapEvent | None:
        """Record an ack; return the gap to report when a resume was not recovered.

        On alert topics a gap also opens a fill (``state.fill``): live alerts are held until
        :meth:`complete_fill` merges them with the history after ``state.fill_since``.
        """
        topic = ack.data.topic
        state = self.topics.get(topic) if topic is not None else None
        if state is None:
            return None
        first = not state.acked
        state.acked = True
        if state.subscribed_at is None:
            state.subscribed_at = ack.timestamp
        if state.epoch is None:
            state.epoch = epoch
        gap: GapEvent | None = None
        if ack.data.recovered is False:
            previous = state.sent_epoch
            reason: GapReason = "epoch_changed" if previous != epoch else "out_of_buffer"
            if reason == "epoch_changed":
                # Sequence numbers start over: resume from this epoch's start next time.
                state.epoch, state.last_seq = epoch, None
            self.stats.gaps += 1
            gap = GapEvent(topic or "", reason, state.sent_resume_from, previous, epoch)
        if state.epoch == epoch and ack.data.seq is not None:
            state.ack_seq = ack.data.seq
        if state.is_alerts:
            newest, store = ack.data.last_alert_id, ack.data.store_id
            if first and state.last_alert_id is None and newest is not None:
                state.alert_epoch, state.last_alert_id = epoch, newest  # older ones predate us
            if gap is not None:
                self._open_fill(state, epoch, newest, store)
            if store is not None:
                state.alert_store = store
        return gap

    def _open_fill(
        self, state: TopicState, epoch: str | None, newest: int | None, store: str | None
    ) -> None:
        if state.filling is None:
            state.filling = []  # else a fill is pending: keep what it holds, replace it
        state.fill = next(self._fills)
        since = state.last_alert_id or 0
        if store is not None and state.alert_store is not None:
            replaced = store != state.alert_store
        else:  # a server that does not say: its store is fresh if it is behind ours
            replaced = (
                state.alert_epoch != epoch
                and newest is not None
                and state.last_alert_id is not None
                and newest < state.last_alert_id
            )
        if replaced:
            since = 0  # another store: every alert in it is new to us
        state.fill_since = since

    def cancel_fill(self, topic: str) -> None:
        """No fill will happen (disabled): release the held alerts' slot."""
        state = self.topics.get(topic)
        if state is not None:
            state.filling, state.fill = None, None

    def accept(self, message: StreamedMessage, epoch: str | None) -> bool:
        """Whether to deliver a streamed message now; updates the resume position."""
        state = self.topics.get(message.topic)
        if state is None:
            self.stats.stray += 1
            return False
        if state.epoch == epoch and state.last_seq is not None:
            if message.seq <= state.last_seq:
                self.stats.duplicates += 1
                return False
            if message.seq > state.last_seq + 1:
                self.stats.missed += message.seq - state.last_seq - 1
        state.epoch, state.last_seq = epoch, message.seq
        if isinstance(message, Alert):
            if state.filling is not None:
                state.filling.append(message)
                return False
            return self._new_alert(state, message, epoch)
        return True

    def _new_alert(self, state: TopicState, alert: Alert, epoch: str | None) -> bool:
        alert_id = alert.data.alert_id
        if state.last_alert_id is None:
            # No alert seen and no position from the server: a resume asked for the epoch's
            # whole buffer (or history); skip what was published before we subscribed.
            if state.subscribed_at is not None and alert.timestamp < state.subscribed_at:
                return False
        elif state.alert_epoch == epoch and alert_id <= state.last_alert_id:
            self.stats.duplicates += 1
            return False
        state.alert_epoch, state.last_alert_id = epoch, alert_id
        return True

    def complete_fill(
        self,
        topic: str,
        history: list[AlertPayload] | None,
        *,
        generation: int | None = None,
        fill: int | None = None,
        epoch: str | None = None,
    ) -> tuple[list[Alert], int] | None:
        """Merge the alert history (served in ``epoch``) with the live alerts held meanwhile.

        Returns the alerts to deliver (by ``alert_id``, no duplicates) and how many came
        from the history; None when this fill is stale (the subscription was replaced, or a
        newer fill took over): nothing of it may be delivered. ``generation``, ``fill`` and
        ``epoch`` default to the subscription's current ones.
        """
        state = self.topics.get(topic)
        if state is None:
            return None
        if generation is not None and state.generation != generation:
            return None
        if state.fill is None or (fill is not None and state.fill != fill):
            return None
        if epoch is None:
            epoch = state.epoch
        held, state.filling, state.fill = state.filling or [], None, None
        candidates: list[tuple[int, bool, Alert]] = []
        for payload in history or ():
            if state.symbol != "*" and payload.symbol.upper() != state.symbol:
                continue
            if payload.alert_id <= state.fill_since:
                continue  # we asked for what came after it
            alert = Alert(topic=topic, seq=0, timestamp=payload.timestamp, data=payload)
            candidates.append((payload.alert_id, True, alert))
        candidates.extend((a.data.alert_id, False, a) for a in held)
        candidates.sort(key=lambda item: (item[0], item[1]))
        out: list[Alert] = []
        filled = 0
        for _, from_history, alert in candidates:
            if self._new_alert(state, alert, epoch):
                out.append(alert)
                filled += from_history
        self.stats.alerts_filled += filled
        return out, filled

    def is_current(self, topic: str, generation: int) -> bool:
        """The subscription a fill was made for is still the one in the book."""
        state = self.topics.get(topic)
        return state is not None and state.generation == generation
