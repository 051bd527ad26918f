"""The client's pure state: connection states, reconnect policy, subscriptions and resume.

Nothing here does I/O; :mod:`.stream` drives it. The pieces:

- :class:`ConnectionState`, :class:`StateChange`: what the application observes.
- :class:`ReconnectPolicy`: full-jitter exponential backoff (:func:`core.backoff.backoff`)
  with an attempt counter that the stream resets when a ``connection_status`` arrives, and the
  close ``retry_after`` as a lower bound.
- :class:`SubscriptionBook`: the subscriptions to restore after a reconnect, with the last
  ``seq``/``epoch`` of each topic. It builds the resuming ``subscribe`` requests and decides,
  per streamed message, whether to deliver it (no duplicates: a ``seq`` at or below the last
  one seen in the same epoch is dropped; alerts are also de-duplicated by ``alert_id``).
- :class:`GapEvent`: told to the application when a resume could not recover everything.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from pydantic import ValidationError

from ..core.backoff import BASE_DELAY, FACTOR, MAX_DELAY, backoff, backoff_ceiling
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


class ConnectionState(str, Enum):
    """Lifecycle of a :class:`~jupyter_rtstream.client.Stream`.

    ``connecting``: first connection in progress. ``connected``: the server's
    ``connection_status`` arrived on a live socket. ``reconnecting``: the connection was lost
    or an attempt failed; waiting ``next_retry_at`` or trying again. ``disconnected``: final,
    after ``close()`` or an error that retrying cannot fix (an authentication refusal).
    """

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StateChange:
    """Passed to ``stream.on("state", callback)`` on every state transition."""

    state: ConnectionState
    previous: ConnectionState
    attempts: int
    last_error: BaseException | None
    next_retry_at: datetime | None
    message_type: Literal["state"] = "state"


GapReason = Literal["epoch_changed", "out_of_buffer"]


@dataclass(frozen=True)
class GapEvent:
    """A resume the server could not satisfy (its ``ack`` said ``recovered: false``).

    ``reason`` is ``"epoch_changed"`` (the server restarted: sequence numbers start over)
    or ``"out_of_buffer"`` (the gap is older than the replay buffer). Messages between
    ``resume_from`` and the fresh snapshot that follows are lost for market data, indicators
    and analytics. For alert topics the client fills the gap from
    ``GET rtstream/api/alerts?since=<last alert_id>`` before telling you: ``filled`` is the
    number of alerts recovered that way (delivered as ordinary ``alert`` messages with
    ``seq == 0``), and ``fill_error`` says why filling failed, if it did.
    """

    topic: str
    reason: GapReason
    resume_from: int | None
    previous_epoch: str | None
    epoch: str | None
    filled: int | None = None
    fill_error: str | None = None
    message_type: Literal["gap"] = "gap"


@dataclass
class StreamStats:
    """Counters of one stream (``stream.stats``); never reset."""

    #: Frames received (valid or not).
    frames: int = 0
    #: Frames that were not a valid server message (bad JSON, unknown type, binary, ...).
    invalid_frames: int = 0
    #: Text of the last invalid frame's error, for diagnostics.
    last_invalid: str | None = None
    #: Streamed messages delivered to the application.
    delivered: int = 0
    #: Replayed messages dropped because they were already delivered (seq / alert_id).
    duplicates: int = 0
    #: Sequence numbers skipped within an epoch (server conflation or unrecoverable gaps).
    missed: int = 0
    #: Streamed messages for topics we are not subscribed to (in flight at unsubscribe).
    stray: int = 0
    #: Resumes answered ``recovered: false`` (one :class:`GapEvent` each).
    gaps: int = 0
    #: Alerts recovered from the alert history after a gap.
    alerts_filled: int = 0
    #: Connection attempts made, successful or not.
    connection_attempts: int = 0
    #: Connections established after the first one.
    reconnects: int = 0
    #: Exceptions raised by application callbacks (logged, then ignored).
    callback_errors: int = 0
    #: Messages dropped from the iteration queue because nobody consumed them in time.
    queue_overflow: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- reconnect


@dataclass(frozen=True)
class CloseInfo:
    """Why a connection ended, parsed from the close frame (JSON reason, see core.errors)."""

    code: int | None
    reason: str | None
    retry_after: float | None = None

    @classmethod
    def parse(cls, code: int | None, text: str | None) -> CloseInfo:
        reason, retry_after = text or None, None
        if text and text.startswith("{"):
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if isinstance(body, dict):
                reason = str(body.get("reason")) if body.get("reason") is not None else reason
                value = body.get("retry_after")
                if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                    retry_after = float(value)
        return cls(code, reason, retry_after)

    def __str__(self) -> str:
        text = f"closed with code {self.code}" if self.code is not None else "connection lost"
        if self.reason:
            text += f" ({self.reason})"
        return text


class ReconnectPolicy:
    """Full-jitter exponential backoff plus an attempt counter.

    ``next_delay()`` draws ``uniform(0, min(cap, base * factor ** attempts))`` and counts the
    attempt; a server-provided ``retry_after`` is a lower bound (the server already spread
    it). ``reset()`` is called when the server's ``connection_status`` arrives.
    """

    def __init__(
        self,
        base: float = BASE_DELAY,
        cap: float = MAX_DELAY,
        factor: float = FACTOR,
        rng: random.Random | None = None,
    ) -> None:
        if base <= 0 or cap <= 0 or factor < 1:
            raise ValueError("backoff needs base > 0, cap > 0 and factor >= 1")
        self.base = base
        self.cap = cap
        self.factor = factor
        self.rng = rng or random.Random()
        self.attempts = 0
        self._delays: Iterator[float] = backoff(base, cap, factor, self.rng)

    def reset(self) -> None:
        self.attempts = 0
        self._delays = backoff(self.base, self.cap, self.factor, self.rng)

    def ceiling(self) -> float:
        """Upper bound of the next delay (before ``retry_after``)."""
        return backoff_ceiling(self.attempts, self.base, self.cap, self.factor)

    def next_delay(self, retry_after: float | None = None) -> float:
        delay = next(self._delays)
        self.attempts += 1
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay


# --------------------------------------------------------------------------- subscriptions


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
    #: Last seq delivered, and the epoch it belongs to.
    last_seq: int | None = None
    epoch: str | None = None
    #: The server acknowledged this subscription at least once (then resubscribes resume).
    acked: bool = False
    #: Server time of the first ack: alerts older than this predate the subscription.
    subscribed_at: datetime | None = None
    #: Highest alert_id delivered on this topic (alert topics).
    last_alert_id: int | None = None
    #: While an alert gap is being filled from the REST history, live alerts wait here.
    filling: list[Alert] | None = None
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
            state = self.topics[topic] = TopicState(k, s, topic)
        return state

    def remove(self, topic: str) -> TopicState | None:
        return self.topics.pop(topic, None)

    def subscribe_request(self, state: TopicState, request_id: str) -> Subscribe:
        """A plain subscribe the first time; a resuming one once the server acked it."""
        resume_from: int | None = None
        epoch: str | None = None
        if state.acked and state.epoch is not None:
            resume_from = state.last_seq if state.last_seq is not None else 0
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
        """Record an ack; return the gap to report when a resume was not recovered."""
        topic = ack.data.topic
        state = self.topics.get(topic) if topic is not None else None
        if state is None:
            return None
        state.acked = True
        if state.subscribed_at is None:
            state.subscribed_at = ack.timestamp
        if state.epoch is None:
            state.epoch = epoch
        if ack.data.recovered is not False:
            return None
        previous = state.sent_epoch
        reason: GapReason = "epoch_changed" if previous != epoch else "out_of_buffer"
        if reason == "epoch_changed":
            # Sequence numbers start over: resume from this epoch's start next time.
            state.epoch, state.last_seq = epoch, None
        if state.is_alerts:
            state.filling = []
        self.stats.gaps += 1
        return GapEvent(topic or "", reason, state.sent_resume_from, previous, epoch)

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
            return self._accept_alert(state, message)
        return True

    def _accept_alert(self, state: TopicState, message: Alert) -> bool:
        if state.filling is not None:
            state.filling.append(message)
            return False
        return self._new_alert(state, message)

    def _new_alert(self, state: TopicState, alert: Alert) -> bool:
        if state.last_alert_id is None:
            # No alert seen yet, so a resume asked for the epoch's whole buffer: skip what
            # was published before we subscribed (message time vs. the ack's, both server's).
            if state.subscribed_at is not None and alert.timestamp < state.subscribed_at:
                return False
        elif alert.data.alert_id <= state.last_alert_id:
            self.stats.duplicates += 1
            return False
        state.last_alert_id = alert.data.alert_id
        return True

    def fill_since(self, state: TopicState) -> int:
        """The ``since`` of the alert-history request that fills this topic's gap."""
        return state.last_alert_id if state.last_alert_id is not None else 0

    def complete_fill(
        self, topic: str, history: list[AlertPayload] | None
    ) -> tuple[list[Alert], int]:
        """Merge the alert history with the live alerts held meanwhile.

        Returns the alerts to deliver (by ``alert_id``, no duplicates) and how many came
        from the history.
        """
        state = self.topics.get(topic)
        if state is None:
            return [], 0
        held, state.filling = state.filling or [], None
        candidates: list[tuple[int, bool, Alert]] = []
        for payload in history or ():
            if state.symbol != "*" and payload.symbol.upper() != state.symbol:
                continue
            alert = Alert(topic=topic, seq=0, timestamp=payload.timestamp, data=payload)
            candidates.append((payload.alert_id, True, alert))
        candidates.extend((a.data.alert_id, False, a) for a in held)
        candidates.sort(key=lambda item: (item[0], item[1]))
        out: list[Alert] = []
        filled = 0
        for _, from_history, alert in candidates:
            if self._new_alert(state, alert):
                out.append(alert)
                filled += from_history
        self.stats.alerts_filled += filled
        return out, filled
