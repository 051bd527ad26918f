"""What one stream's application saw, for the fault suite and the client's live tests.

A :class:`Recorder` hooks a :class:`~jupyter_rtstream.client.Stream`'s callbacks and keeps
``(epoch, seq)`` per topic, arrival times, alert ids, state changes and gap events, so a
test or scenario can judge continuity (lost, duplicated, silent breaks) afterwards.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from ..client import ConnectionState, GapEvent, StateChange, Stream


class Recorder:
    """What one stream's application saw: (epoch, seq) per topic, alert ids, gaps, states."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.seqs: dict[str, list[tuple[str | None, int]]] = defaultdict(list)
        #: topic -> monotonic arrival times of its market data.
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.alert_ids: dict[str, list[int]] = defaultdict(list)
        self.states: list[tuple[float, StateChange]] = []
        self.gaps: list[GapEvent] = []
        stream.on("market_data", self._data)
        stream.on("alert", self._alert)
        stream.on("state", lambda change: self.states.append((time.monotonic(), change)))
        stream.on("gap", self.gaps.append)

    def _data(self, message: Any) -> None:
        self.seqs[message.topic].append((self.stream.epoch, message.seq))
        self.arrivals[message.topic].append(time.monotonic())

    def _alert(self, message: Any) -> None:
        self.alert_ids[message.topic].append(message.data.alert_id)

    def first_data_after(self, when: float) -> float | None:
        """Monotonic time of the first market data (any topic) after ``when``."""
        return min((t for times in self.arrivals.values() for t in times if t > when), default=None)

    def first_state_after(self, when: float, state: ConnectionState) -> float | None:
        return next((t for t, c in self.states if t > when and c.state is state), None)

    def reconnected_at(self, after: float) -> float | None:
        """Monotonic time of the first ``connected`` state after ``after``."""
        return self.first_state_after(after, ConnectionState.CONNECTED)

    def burst(self, topic: str, start: float, window: float = 0.05) -> int:
        """Messages of ``topic`` delivered within ``window`` s of ``start`` (a replay burst)."""
        return sum(1 for t in self.arrivals[topic] if start <= t <= start + window)

    def continuity(self, topic: str) -> tuple[int, int, int]:
        """(lost, duplicated, silent) of ``topic``: seqs skipped or repeated within an epoch,
        and breaks (a skip, or an epoch change) that no gap event announced."""
        announced = [g for g in self.gaps if g.topic == topic]
        epoch_changes = sum(1 for g in announced if g.reason == "epoch_changed")
        out_of_buffer = sum(1 for g in announced if g.reason == "out_of_buffer")
        lost = dup = skips = changes = 0
        previous: tuple[str | None, int] | None = None
        for epoch, seq in self.seqs[topic]:
            if previous is not None:
                if previous[0] == epoch:
                    step = seq - previous[1]
                    if step <= 0:
                        dup += 1
                    elif step > 1:
                        lost += step - 1
                        skips += 1
                else:
                    changes += 1
            previous = (epoch, seq)
        silent = max(0, changes - epoch_changes) + max(0, skips - out_of_buffer)
        return lost, dup, silent
