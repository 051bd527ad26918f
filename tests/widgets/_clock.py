"""Virtual time for the frame limiter: a clock and a timer queue the test advances by hand,
so pacing is asserted exactly and does not depend on how loaded the machine is."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable


class VirtualTimer:
    def __init__(self, when: float) -> None:
        self.when = when
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class VirtualTime:
    """``clock()`` and ``call_later()`` for :class:`FrameLimiter`; :meth:`advance` runs
    every callback that falls due, in order, with the clock set to its due time."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self._queue: list[tuple[float, int, VirtualTimer, Callable[[], None]]] = []
        self._order = itertools.count()

    def clock(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> VirtualTimer:
        timer = VirtualTimer(self.now + delay)
        heapq.heappush(self._queue, (timer.when, next(self._order), timer, callback))
        return timer

    def advance(self, seconds: float) -> None:
        until = self.now + seconds
        while self._queue and self._queue[0][0] <= until:
            when, _, timer, callback = heapq.heappop(self._queue)
            if not timer.cancelled:
                self.now = max(self.now, when)
                callback()
        self.now = until
