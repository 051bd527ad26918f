"""Frame pacing and render statistics; no widget imports (testable on their own).

A live widget never sends one update per message. ``handle(message)`` only buffers and
asks its :class:`FrameLimiter` for a frame; the limiter calls the widget's ``flush()`` on
the running asyncio loop (ipykernel's, in a notebook): at once when the widget has not drawn
for one frame interval (leading edge), else at the end of that interval, coalescing what
arrived meanwhile. Every widget of the kernel draws from one :class:`FrameBudget`, sized to
what jupyter_server lets iopub carry, so under load the frame rate adapts instead of
flooding (or being dropped by) the channel.

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

#: Most frames per second of one widget: its frame interval is ``1 / fps``.
DEFAULT_FPS = 60.0
#: Delay of a leading-edge frame: 0, the loop's next turn (messages of the same turn share it).
DEFAULT_COALESCE = 0.0
#: Frames a widget may send back to back before the ``fps`` pacing applies.
DEFAULT_BURST = 1.0
#: jupyter_server's defaults: ``iopub_msg_rate_limit`` (messages/s) and
#: ``iopub_data_rate_limit`` (bytes/s).
IOPUB_MSG_RATE = 1000.0
IOPUB_DATA_RATE = 1_000_000.0
#: The widgets' share of those limits (the rest: prints, outputs, other libraries).
DEFAULT_SHARE = 0.5
#: Comm messages per second the browser takes without falling behind. Past it the page's
#: main thread is busy all the time and updates queue up: five charts at 1,000 msg/s in
#: JupyterLab (Chromium, 2 shared cores) showed ticks 0.3 to 0.8 s late (p99) at about 350
#: comm messages/s, 0.2 s at 150 (docs/performance.md). The default feed needs about 110.
#: Below iopub's share, so under load this, not iopub, sets the kernel's frame rate.
BROWSER_MSG_RATE = 150.0
#: Depth of the shared budget, in seconds of its rates.
BUDGET_BURST = 1.0
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


#: Waits shorter than this are no wait (float rounding of timer deadlines).
_EPSILON = 1e-6


class FrameBudget:
    """What the kernel's iopub channel can carry, shared by every live widget of a kernel.

    jupyter_server drops iopub messages over ``iopub_msg_rate_limit`` (1,000/s, averaged
    over 3 s) and counts ``iopub_data_rate_limit`` (1 MB/s) on stream output; the widgets
    hold themselves to ``share`` of both (every comm message and every byte of widget state
    counted), leaving the rest to prints and other outputs, and to no more messages than
    the browser renders without falling behind (:data:`BROWSER_MSG_RATE`). Two token
    buckets (the core :class:`~jupyter_rtstream.core.ratelimit.TokenBucket`), ``burst``
    seconds deep: a frame
    reserves what it announces and goes when both have earned it (reservations queue in
    order, so large frames never starve); what it really cost is then settled (a frame
    larger than announced leaves a debt, which later frames wait out). So over any ``T``
    seconds the widgets send at most ``rate * (burst + T)`` messages and bytes, plus what
    frames sent beyond their announced bytes (a widget announces its previous frame's).
    """

    def __init__(
        self,
        msg_rate: float = min(IOPUB_MSG_RATE * DEFAULT_SHARE, BROWSER_MSG_RATE),
        byte_rate: float = IOPUB_DATA_RATE * DEFAULT_SHARE,
        burst: float = BUDGET_BURST,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if msg_rate <= 0 or byte_rate <= 0 or burst <= 0:
            raise ValueError("rates and burst must be > 0")
        self.messages = TokenBucket(msg_rate, msg_rate * burst, clock)
        self.bytes = TokenBucket(byte_rate, byte_rate * burst, clock)
        self.messages_sent = 0
        self.bytes_sent = 0

    def delay(self, messages: float, nbytes: float) -> float:
        """Seconds until a frame of that cost may go (0: now)."""
        return max(self.messages.time_until(messages), self.bytes.time_until(nbytes))

    def reserve(self, messages: float, nbytes: float) -> float:
        """Pay for a frame now; return the seconds until it may go (0: now). Reservations
        queue up in order (each waits out the debt of those before it): no widget starves,
        however large its frames, and frames go no faster than the budget earns."""
        wait = self.delay(messages, nbytes)
        self.messages.spend(messages)
        self.bytes.spend(nbytes)
        return wait

    def settle(self, reserved: tuple[float, float], messages: int, nbytes: int) -> None:
        """A reserved frame went: pay (or get back) the difference with what it cost."""
        self.messages.spend(messages - reserved[0])
        self.bytes.spend(nbytes - reserved[1])
        self.messages_sent += messages
        self.bytes_sent += nbytes

    def spend(self, messages: int, nbytes: int) -> None:
        """A frame sent without a reservation (an explicit ``flush()``)."""
        self.settle((0.0, 0.0), messages, nbytes)


_KERNEL_BUDGET: FrameBudget | None = None


def kernel_budget() -> FrameBudget:
    """The one :class:`FrameBudget` of this process (a kernel): every widget draws from it."""
    global _KERNEL_BUDGET
    if _KERNEL_BUDGET is None:
        _KERNEL_BUDGET = FrameBudget()
    return _KERNEL_BUDGET


class FrameLimiter:
    """Calls ``flush`` at most ``fps`` times per second, within the shared ``budget``.

    Leading edge: a request that finds the widget has not drawn for one frame interval
    (``1 / fps``) and the budget able to pay for a frame is drawn at once (``coalesce``
    seconds later, 0 by default: on the loop's next turn, so messages handed over in the
    same turn share it). Requests within an interval of the last frame are coalesced into
    one frame at the end of that interval, never later, unless the shared budget is spent:
    then the frame goes as soon as the budget has earned its cost back (the budget, not a
    fixed per-widget rate, sets the pace under load, so the frame rate adapts to what iopub
    can carry and to how many widgets share it).

    Pacing is the core :class:`~jupyter_rtstream.core.ratelimit.TokenBucket` (``burst``
    frames back to back, then one per interval). ``cost`` is the most comm messages one
    frame sends (announced to the budget before the frame); the bytes announced are those
    of the widget's previous frame; the owner reports what a frame really cost with
    :meth:`spent`. ``request()`` is cheap and idempotent. Without a running loop (plain
    scripts, unit tests) nothing is scheduled and the owner calls ``flush()`` itself.
    ``fps <= 0`` disables pacing. ``clock`` and ``call_later`` default to the monotonic
    clock and the running loop; tests inject virtual time.
    """

    def __init__(
        self,
        flush: Callable[[], Any],
        fps: float = DEFAULT_FPS,
        coalesce: float = DEFAULT_COALESCE,
        burst: float = DEFAULT_BURST,
        *,
        budget: FrameBudget | None = None,
        cost: int = 1,
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
        self.budget = budget
        self.cost = cost
        self.frame_bytes = 0
        self.frames = 0
        self.deferred = 0
        self.closed = False
        self._call_later = call_later
        self._handle: Timer | None = None
        self._reserved: tuple[float, float] | None = None
        self._bucket = TokenBucket(max(fps, 0.0), burst, clock)

    @property
    def interval(self) -> float:
        return 1.0 / self.fps if self.fps > 0 else 0.0

    @property
    def scheduled(self) -> bool:
        return self._handle is not None

    def _wait(self) -> float:
        bucket = self._bucket
        bucket.rate = self.fps  # ``fps`` is a public, settable attribute
        wait = bucket.time_until_token()
        if self.budget is not None and self._reserved is None:
            self._reserved = (float(self.cost), float(self.frame_bytes))
            wait = max(wait, self.budget.reserve(*self._reserved))
        return wait if wait > _EPSILON else 0.0  # a timer that fired a float ulp early

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
        wait = self._wait()
        delay = self.coalesce if wait == 0 else wait
        try:
            self._handle = self._call_later(delay, self._run)
        except RuntimeError:
            return  # no loop: the owner flushes explicitly

    def _run(self) -> None:
        self._handle = None
        if self.closed:
            return
        if self.fps > 0:
            wait = self._wait()
            if wait > 0:  # fps changed meanwhile
                self.deferred += 1
                self._handle = self._call_later(wait, self._run)
                return
            self._bucket.spend(1.0)
        self.frames += 1
        try:
            self._flush()
        except Exception:  # a rendering bug must not kill the loop's other callbacks
            log.exception("rtstream widgets: flush failed")
        if self._reserved is not None and self.budget is not None:
            self.budget.settle(self._reserved, 0, 0)  # nothing was sent after all
            self._reserved = None

    def spent(self, messages: int, nbytes: int) -> None:
        """What the frame just sent cost (comm messages, bytes of state)."""
        self.frame_bytes = nbytes
        if self.budget is not None:
            reserved, self._reserved = self._reserved, None
            self.budget.settle(reserved or (0.0, 0.0), messages, nbytes)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self._reserved is not None and self.budget is not None:
            self.budget.settle(self._reserved, 0, 0)  # give the reservation back
            self._reserved = None

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
