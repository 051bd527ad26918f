"""Connection health a person can read: round-trip time and per-topic silence (pure).

:class:`HealthTracker` is fed by the sans-I/O protocol (every delivered streamed message,
with its arrival time ``now``) and by ``Stream.ping()`` (each round trip); :meth:`snapshot`
answers with a :class:`Health` for a given ``now``. A topic's *usual interval* is a moving
average of the gaps between its messages; it is *silent* when nothing came for more than
``SILENT_INTERVALS`` of them (and at least ``MIN_SILENCE`` seconds, so a fast feed's jitter
is not an alarm).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: A topic is silent after this many of its usual intervals without a message.
SILENT_INTERVALS = 3.0
#: ... and never before this many seconds.
MIN_SILENCE = 1.0
#: Weight of the newest gap in the moving average of a topic's interval.
ALPHA = 0.2


@dataclass(frozen=True)
class TopicHealth:
    topic: str
    #: Seconds since its last message (None: nothing yet).
    age: float | None
    #: Usual seconds between its messages (None: fewer than two messages yet).
    interval: float | None
    silent: bool


@dataclass(frozen=True)
class Health:
    """``rtt``: the last ping's round trip (s), ``rtt_age`` how long ago; ``topics``: one
    :class:`TopicHealth` per subscribed topic."""

    rtt: float | None
    rtt_age: float | None
    topics: tuple[TopicHealth, ...]

    @property
    def silent(self) -> list[str]:
        return [t.topic for t in self.topics if t.silent]

    def text(self) -> str:
        """Several lines for a hover title."""
        rtt = "round trip: " + ("-" if self.rtt is None else f"{self.rtt * 1000:.1f} ms")
        lines = [rtt]
        for t in self.topics:
            age = "no message yet" if t.age is None else f"last {t.age:.1f} s ago"
            usual = "" if t.interval is None else f", usually every {t.interval:.2f} s"
            lines.append(f"{t.topic}: {age}{usual}{' - SILENT' if t.silent else ''}")
        return "\n".join(lines)


class _Topic:
    __slots__ = ("interval", "last")

    def __init__(self, now: float) -> None:
        self.last = now
        self.interval: float | None = None


class HealthTracker:
    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._rtt: float | None = None
        self._rtt_at: float | None = None

    def message(self, topic: str, now: float) -> None:
        state = self._topics.get(topic)
        if state is None:
            self._topics[topic] = _Topic(now)
            return
        gap = max(0.0, now - state.last)
        state.interval = (
            gap if state.interval is None else (1 - ALPHA) * state.interval + ALPHA * gap
        )
        state.last = now

    def round_trip(self, seconds: float, now: float) -> None:
        self._rtt, self._rtt_at = seconds, now

    def forget(self, topic: str) -> None:
        self._topics.pop(topic, None)

    def snapshot(self, now: float, subscribed: Iterable[str]) -> Health:
        topics = []
        for topic in sorted(subscribed):
            state = self._topics.get(topic)
            if state is None:
                topics.append(TopicHealth(topic, None, None, False))
                continue
            age = max(0.0, now - state.last)
            interval = state.interval
            silent = interval is not None and age > max(MIN_SILENCE, SILENT_INTERVALS * interval)
            topics.append(TopicHealth(topic, age, interval, silent))
        rtt_age = None if self._rtt_at is None else max(0.0, now - self._rtt_at)
        return Health(self._rtt, rtt_age, tuple(topics))
