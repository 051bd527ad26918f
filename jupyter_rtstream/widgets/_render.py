"""Frame pacing and render statistics; no widget imports (testable on their own).

A live widget never sends one update per message. ``handle(message)`` only buffers and
asks its :class:`FrameLimiter` for a frame; the limiter calls the widget's ``flush()`` at
most ``fps`` times per second (plus a small burst), on the running asyncio loop
(ipykernel's, in a notebook). A frame is sent ``coalesce`` seconds after the message that
opened it, so messages published together (a tick's ``market_data`` and
``technical_indicators``) share it; under load, everything that arrives while the budget
is spent is coalesced into the next frame.

:class:`RenderStats` records, per message, the time from its arrival in the kernel
(``handle``) to the end of the ``flush`` that sent its widget update (when the comm
messages have been handed to the kernel), and reports p50/p99 over a bounded sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from ..core.ratelimit import TokenBucket

log = logging.getLogger("jupyter_rtstream.widgets")

#: Default frames per second per widget (each chart, the table, the alert feed...).
DEFAULT_FPS = 10.0
#: Delay of the first frame after a quiet period: lets a burst of messages share it.
DEFAULT_COALESCE = 0.005
#: Frames a widget may send back to back before the ``fps`` pacing applies.
DEFAULT_BURST = 2.0
#: Latency samples kept for the percentiles (the most recent ones).
LATENCY_SAMPLES = 10_000


def now() -> float:
    """Clock of the latency measurements (seconds, monotonic, high resolution)."""
    return time.perf_counter()


def percentile(values: Iterable[float], q: float) -> float | None:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; None when empty."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


class RenderStats:
    """Counters and latency samples of one live widget.

    - ``received``: messages accepted by ``handle``;
    - ``flushed``: frames sent (each frame is one coalesced widget update);
    - ``coalesced``: messages that did not need a frame of their own (they shared a frame
      with other messages): ``received == coalesced + frames that carried messages +
      pending``;
    - ``dropped``: chart rows evicted from the window before any frame showed them (more
      rows arrived between two frames than the window holds);
    - ``latencies``: per message, arrival (``handle``) to the end of the frame that sent it;
      ``render_times``: per frame, the time ``flush`` took (build and send the update).
    """

    def __init__(self, samples: int = LATENCY_SAMPLES) -> None:
        self.received = 0
        self.flushed = 0
        self.coalesced = 0
        self.dropped = 0
        self.latencies: deque[float] = deque(maxlen=samples)
        #: Time spent building and sending each frame (``flush``), most recent frames.
        self.render_times: deque[float] = deque(maxlen=samples)
        self._pending: list[float] = []

    @property
    def pending(self) -> int:
        return len(self._pending)

    def arrived(self, at: float | None = None) -> None:
        self.received += 1
        self._pending.append(now() if at is None else at)

    def sent(self, at: float | None = None, started: float | None = None) -> int:
        """Close a frame (rendered since ``started``): record the latency of every message
        it carried."""
        done = now() if at is None else at
        if started is not None:
            self.render_times.append(done - started)
        carried = len(self._pending)
        self.latencies.extend(done - arrival for arrival in self._pending)
        self._pending.clear()
        self.flushed += 1
        self.coalesced += max(0, carried - 1)
        return carried

    def discard_pending(self) -> None:
        self._pending.clear()

    def as_dict(self) -> dict[str, Any]:
        return summarize([self])


def summarize(parts: Iterable[RenderStats]) -> dict[str, Any]:
    """Merge the stats of several widgets: counts add up, percentiles over every sample."""
    received = flushed = coalesced = dropped = pending = 0
    samples: list[float] = []
    renders: list[float] = []
    for part in parts:
        received += part.received
        flushed += part.flushed
        coalesced += part.coalesced
        dropped += part.dropped
        pending += part.pending
        samples.extend(part.latencies)
        renders.extend(part.render_times)

    def ms(value: float | None) -> float | None:
        return None if value is None else value * 1000.0

    return {
        "received": received,
        "flushed": flushed,
        "coalesced": coalesced,
        "dropped": dropped,
        "pending": pending,
        "samples": len(samples),
        "p50_ms": ms(percentile(samples, 50)),
        "p99_ms": ms(percentile(samples, 99)),
        "max_ms": ms(max(samples) if samples else None),
        "render_p99_ms": ms(percentile(renders, 99)),
    }


class Timer(Protocol):
    """What :class:`FrameLimiter` needs of a scheduled callback (an ``asyncio.TimerHandle``)."""

    def cancel(self) -> None: ...


#: ``call_later(delay, callback)``: schedule ``callback`` in ``delay`` seconds.
CallLater = Callable[[float, Callable[[], None]], Timer]


def _loop_call_later(delay: float, callback: Callable[[], None]) -> Timer:
    # Raises RuntimeError without a running loop; FrameLimiter.request() treats that as
    # "the owner flushes explicitly".
    return asyncio.get_running_loop().call_later(delay, callback)


class FrameLimiter:
    """Calls ``flush`` at most ``fps`` times per second on the running asyncio loop.

    Pacing is the core :class:`~jupyter_rtstream.core.ratelimit.TokenBucket`: ``burst``
    frames may go out back to back, then one per ``1 / fps`` seconds, so over any ``T``
    seconds at most ``burst + T * fps`` frames are sent. A frame is sent ``coalesce``
    seconds after it opens (the first request that finds no frame scheduled), so messages
    published together share it. The bucket (not a fixed frame clock) is what keeps latency
    low when the feed ticks at about ``fps``: a tick never waits for a frame slot out of
    phase with it.

    ``request()`` is cheap and idempotent: it schedules one frame if none is scheduled.
    Without a running loop (plain scripts, unit tests) nothing is scheduled and the owner
    calls ``flush()`` itself. ``fps <= 0`` disables pacing: every request flushes at once.
    ``clock`` and ``call_later`` default to the monotonic clock and the running loop; tests
    inject a virtual clock to assert on timing without sleeping.
    """

    def __init__(
        self,
        flush: Callable[[], Any],
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        burst: float = DEFAULT_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
        call_later: CallLater = _loop_call_later,
    ) -> None:
        if coalesce < 0:
            raise ValueError("coalesce must be >= 0")
        if burst < 1:
            raise ValueError("burst must be >= 1")
        self._flush = flush
        self.fps = fps
        self.coalesce = coalesce
        self.burst = burst
        self.frames = 0
        self.closed = False
        self._call_later = call_later
        self._handle: Timer | None = None
        self._bucket = TokenBucket(max(fps, 0.0), burst, clock)

    @property
    def interval(self) -> float:
        return 1.0 / self.fps if self.fps > 0 else 0.0

    @property
    def scheduled(self) -> bool:
        return self._handle is not None

    def request(self) -> None:
        if self.closed or self._handle is not None:
            return
        if self.fps <= 0:
            try:
                asyncio.get_running_loop()
            except RuntimeError:
                return  # no loop: the owner flushes explicitly
            self._run()
            return
        bucket = self._bucket
        bucket.rate = self.fps  # ``fps`` is a public, settable attribute
        # Without a banked token the frame opens when the bucket has earned one back.
        wait = bucket.time_until_token()
        try:
            self._handle = self._call_later(wait + self.coalesce, self._run)
        except RuntimeError:
            return  # no loop: the owner flushes explicitly
        bucket.reserve()  # the token this frame spends (borrowed when wait > 0)

    def _run(self) -> None:
        self._handle = None
        if self.closed:
            return
        self.frames += 1
        try:
            self._flush()
        except Exception:  # a rendering bug must not kill the loop's other callbacks
            log.exception("rtstream widgets: flush failed")

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def close(self) -> None:
        self.closed = True
        self.cancel()


@contextlib.contextmanager
def hold_all(widgets: Iterable[Any]) -> Iterator[None]:
    """``hold_sync()`` on several widgets at once: one comm message per changed widget."""
    with contextlib.ExitStack() as stack:
        for widget in widgets:
            stack.enter_context(widget.hold_sync())
        yield
