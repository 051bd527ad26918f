"""Per-client bounded outboxes and the frames they hold (sans-I/O).

A :class:`Frame` is one message serialized once and shared by every subscriber's
:class:`Outbox`. Each outbox is bounded (bytes and messages). Past a quarter of the bound the
client is *lagging*: a new market data / indicator / analytics frame replaces the one still
queued for the same topic (latest wins, counted in ``conflated``). Must-deliver frames
(alerts and control messages) are never conflated or dropped; when one does not fit, the
outbox asks the I/O shell to close the connection with 1013, and the client resumes from the
replay buffers on reconnect. The hub (:mod:`.hub`) fills outboxes; the I/O shell drains them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import CloseCode, close_reason


@dataclass(slots=True)
class Frame:
    """One serialized message, shared by every outbox and the replay buffer."""

    text: str
    topic: str | None = None
    seq: int = 0
    created: float = 0.0
    conflatable: bool = False
    nbytes: int = field(init=False)
    #: The frame's WebSocket wire bytes, built once by the I/O shell and shared.
    wire: bytes | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        # UTF-8 size (the outbox bounds bytes); ASCII, the common case, needs no encoding.
        text = self.text
        self.nbytes = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))


class CloseRequest(NamedTuple):
    """A close the I/O shell is asked to make (a tuple: ``close(*request)`` works)."""

    code: int
    reason: str


class Outbox:
    """A client's bounded, conflating queue of frames waiting to be written.

    Slotted and lean (one list, counters): one exists per connected client, and
    :meth:`push` runs once per message per subscriber, so it allocates nothing when a frame
    is queued (the queue holds the shared frames) and touches no other object of the client:
    the conflation index (each conflatable topic's newest position in the queue) is built
    only when the client starts lagging, the one time it is needed, from the queue itself.
    """

    __slots__ = (
        "_fences",
        "_notified",
        "_pending",
        "_queue",
        "client_id",
        "close_request",
        "conflated",
        "conflated_by_topic",
        "delivered",
        "lag_bytes",
        "lag_messages",
        "max_bytes",
        "max_messages",
        "nbytes",
        "subscriptions",
        "waker",
    )

    def __init__(
        self,
        client_id: str,
        *,
        max_bytes: int,
        max_messages: int,
        waker: Callable[[], None] | None = None,
    ) -> None:
        self.client_id = client_id
        self.max_bytes = max_bytes
        self.max_messages = max_messages
        self.lag_bytes = max_bytes // 4
        self.lag_messages = max(1, max_messages // 4)
        self.waker = waker
        self.subscriptions: set[str] = set()
        self.nbytes = 0
        self.conflated = 0
        self.conflated_by_topic: Counter[str] = Counter()
        self.delivered = 0
        self.close_request: CloseRequest | None = None
        self._queue: list[Frame] = []
        #: Conflatable topic -> index in ``_queue`` of its newest queued frame; None until
        #: the client lags (:meth:`_index`), then kept up to date until the next drain.
        self._pending: dict[str, int] | None = None
        #: Topic -> queue length at :meth:`forget_topic`: frames before it are never
        #: conflated into (None: no such topic since the last drain).
        self._fences: dict[str, int] | None = None
        self._notified = False

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def lagging(self) -> bool:
        return self.nbytes > self.lag_bytes or len(self._queue) > self.lag_messages

    def push(self, frame: Frame) -> None:
        """Queue a frame, conflating or closing per the slow-consumer policy."""
        if self.close_request is not None:
            return
        queue = self._queue
        topic = frame.topic
        if frame.conflatable and topic is not None:
            pending = self._pending
            if self.nbytes > self.lag_bytes or len(queue) > self.lag_messages:  # lagging
                if pending is None:
                    pending = self._pending = self._index()
                index = pending.get(topic)
                if index is not None:
                    self.nbytes += frame.nbytes - queue[index].nbytes
                    queue[index] = frame
                    self.conflated += 1
                    self.conflated_by_topic[topic] += 1
                    return
                pending[topic] = len(queue)
            elif pending is not None:
                pending[topic] = len(queue)
            queue.append(frame)
            self.nbytes += frame.nbytes
        else:
            queue.append(frame)
            self.nbytes += frame.nbytes
            if self.nbytes > self.max_bytes or len(queue) > self.max_messages:
                # A must-deliver frame does not fit: never drop it, ask for a resumable close.
                self.request_close(
                    CloseCode.TRY_AGAIN_LATER,
                    close_reason("SLOW_CONSUMER", retry_after=1.0),
                    discard=True,
                )
                return
        if not self._notified and self.waker is not None:
            self._notified = True
            self.waker()

    def push_text(self, text: str) -> None:
        """Queue a must-deliver control message (ack, error, connection_status)."""
        self.push(Frame(text))

    def _index(self) -> dict[str, int]:
        """Each conflatable topic's newest queued frame (past the topic's fence)."""
        fences = self._fences
        index: dict[str, int] = {}
        for i, queued in enumerate(self._queue):
            topic = queued.topic
            if (
                queued.conflatable
                and topic is not None
                and (fences is None or i >= fences.get(topic, 0))
            ):
                index[topic] = i
        return index

    def forget_topic(self, topic: str) -> None:
        """Stop conflating into frames queued before an unsubscribe/resubscribe."""
        if self._pending is not None:
            self._pending.pop(topic, None)
        if self._queue:
            if self._fences is None:
                self._fences = {}
            self._fences[topic] = len(self._queue)

    def request_close(self, code: int, reason: str, *, discard: bool = False) -> None:
        """Ask the I/O shell to close; what is queued is still sent unless ``discard``."""
        if self.close_request is None:
            self.close_request = CloseRequest(code, reason)
            if discard:
                self._queue = []
                self._pending = self._fences = None
                self.nbytes = 0
            if self.waker is not None:
                self._notified = True
                self.waker()

    def drain(self) -> list[str]:
        """Everything queued, in order; the outbox is empty afterwards."""
        return [frame.text for frame in self.drain_frames()]

    def drain_frames(self) -> list[Frame]:
        """Like :meth:`drain` but returns the shared :class:`Frame` objects."""
        self._notified = False
        frames = self._queue
        if not frames:
            return []
        self._queue = []
        self._pending = self._fences = None
        self.nbytes = 0
        self.delivered += len(frames)
        return frames
