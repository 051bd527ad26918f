"""Frame pacing and render statistics (no widgets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from jupyter_rtstream.widgets._render import (
    FrameBudget,
    FrameLimiter,
    RenderStats,
    percentile,
    summarize,
)

from ._clock import VirtualTime


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0], 99) == 3.0
    values = [float(i) for i in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile(values, 100) == 100.0


def test_render_stats_counts() -> None:
    stats = RenderStats()
    for at in (0.0, 0.01, 0.02):
        stats.arrived(at)
    assert stats.pending == 3
    assert stats.sent(at=0.1) == 3
    stats.arrived(0.2)
    stats.sent(at=0.25)
    summary = summarize([stats])
    assert (summary["received"], summary["flushed"], summary["coalesced"]) == (4, 2, 2)
    assert summary["p50_ms"] == pytest.approx(80.0)
    assert summary["max_ms"] == pytest.approx(100.0)


def test_without_a_loop_nothing_is_scheduled() -> None:
    calls: list[int] = []
    limiter = FrameLimiter(lambda: calls.append(1))
    limiter.request()
    assert not limiter.scheduled and calls == []


def test_a_burst_shares_one_frame() -> None:
    time = VirtualTime()
    frames: list[float] = []
    limiter = FrameLimiter(
        lambda: frames.append(time.now),
        fps=10,
        coalesce=0.005,
        clock=time.clock,
        call_later=time.call_later,
    )
    for _ in range(500):
        limiter.request()
    time.advance(0.05)
    assert frames == [pytest.approx(100.005)]


def limiter_at(
    time: VirtualTime, frames: list[float], fps: float = 20, **kwargs: Any
) -> FrameLimiter:
    return FrameLimiter(
        lambda: frames.append(time.now),
        fps=fps,
        clock=time.clock,
        call_later=time.call_later,
        **kwargs,
    )


def test_steady_requests_are_paced() -> None:
    time = VirtualTime()
    frames: list[float] = []
    limiter = limiter_at(time, frames, fps=20)
    for _ in range(1000):  # a request every millisecond for one second
        limiter.request()
        time.advance(0.001)
    assert len(frames) == 1 + 20  # the leading frame, then one per interval
    assert frames == [pytest.approx(100.0 + 0.05 * k) for k in range(21)]


def test_leading_edge_a_quiet_widget_draws_at_once() -> None:
    """A message after at least one interval without a frame is drawn at once, whatever
    the phase of the earlier frames."""
    time = VirtualTime()
    waits: list[float] = []
    asked = [0.0]
    limiter = FrameLimiter(
        lambda: waits.append(time.now - asked[0]),
        fps=10,
        clock=time.clock,
        call_later=time.call_later,
    )
    asked[0] = time.now
    limiter.request()
    time.advance(0.137)
    for gap in (0.1, 0.13, 0.5, 0.1001, 2.0):
        asked[0] = time.now
        limiter.request()
        time.advance(gap)
    assert waits == [0.0] * 6


def test_messages_within_an_interval_are_coalesced_into_the_next_frame_never_later() -> None:
    time = VirtualTime()
    frames: list[float] = []
    limiter = limiter_at(time, frames, fps=10)
    limiter.request()  # leading edge: drawn at 100.0
    time.advance(0.0)
    for _ in range(9):  # nine messages in the interval that follows
        time.advance(0.01)
        limiter.request()
    assert limiter.scheduled
    time.advance(0.01)  # 100.1: the end of the interval
    assert frames == [100.0, pytest.approx(100.1)]
    time.advance(1.0)
    assert len(frames) == 2  # nothing pending: no more frames


def test_the_shared_budget_is_never_exceeded() -> None:
    """Eight widgets, each wanting 60 frames/s of 4 messages and 20 kB, share a budget of
    500 messages/s and 200 kB/s: over every window, what they spent stays within it."""
    time = VirtualTime()
    budget = FrameBudget(500.0, 200_000.0, burst=0.25, clock=time.clock)
    sent: list[tuple[float, int, int]] = []
    limiters: list[FrameLimiter] = []
    for _ in range(8):

        def flush(index: int = len(limiters)) -> None:
            sent.append((time.now, 4, 20_000))
            limiters[index].spent(4, 20_000)

        limiters.append(
            FrameLimiter(
                flush, fps=60, budget=budget, cost=4, clock=time.clock, call_later=time.call_later
            )
        )
    for limiter in limiters:
        limiter.frame_bytes = 20_000  # announced from the start (else learned from frame 1)
    for _ in range(3000):  # every widget gets a message every millisecond for 3 s
        for limiter in limiters:
            limiter.request()
        time.advance(0.001)
    time.advance(1.0)
    assert budget.bytes_sent == sum(b for _, _, b in sent)
    for window in (0.1, 0.5, 1.0, 2.0):
        for start, _, _ in sent:
            inside = [(m, b) for t, m, b in sent if start <= t < start + window]
            assert sum(m for m, _ in inside) <= 500.0 * (0.25 + window) + 1e-6
            # Bytes: announced exactly here, so within the budget too.
            assert sum(b for _, b in inside) <= 200_000.0 * (0.25 + window) + 1e-6
    # The budget, not 60 fps, set the pace; and every widget got its share of frames.
    frames = [limiter.frames for limiter in limiters]
    assert sum(frames) <= 200_000.0 * 4.25 / 20_000 + 8
    assert min(frames) >= 0.5 * max(frames)


def test_budget_delay_and_debt() -> None:
    time = VirtualTime()
    budget = FrameBudget(100.0, 1000.0, burst=0.1, clock=time.clock)  # 10 msgs, 100 B deep
    assert budget.delay(4, 50) == 0.0
    budget.spend(4, 150)  # more bytes than banked: in debt by 50 B
    assert budget.delay(4, 50) == pytest.approx(0.1)  # 100 B to earn at 1,000 B/s
    time.advance(0.1)
    assert budget.delay(4, 50) == pytest.approx(0.0, abs=1e-9)


def test_an_empty_bucket_delays_the_frame_until_a_token_is_earned() -> None:
    time = VirtualTime()
    frames: list[float] = []
    limiter = FrameLimiter(
        lambda: frames.append(time.now),
        fps=10,
        coalesce=0.0,
        burst=1,
        clock=time.clock,
        call_later=time.call_later,
    )
    limiter.request()
    time.advance(0.0)
    limiter.request()
    assert limiter.scheduled
    time.advance(0.099)
    assert len(frames) == 1
    time.advance(0.001)
    assert frames == [100.0, pytest.approx(100.1)]


def test_unpaced_and_closed() -> None:
    async def main() -> tuple[int, int]:
        calls: list[int] = []
        unpaced = FrameLimiter(lambda: calls.append(1), fps=0)
        for _ in range(3):
            unpaced.request()
        closed = FrameLimiter(lambda: calls.append(2))
        closed.request()
        closed.close()
        await asyncio.sleep(0.05)
        return calls.count(1), calls.count(2)

    assert asyncio.run(main()) == (3, 0)


def test_a_failing_flush_does_not_break_the_limiter() -> None:
    async def main() -> int:
        calls: list[int] = []

        def flush() -> None:
            calls.append(1)
            raise RuntimeError("boom")

        limiter = FrameLimiter(flush, fps=100, coalesce=0.0)
        limiter.request()
        await asyncio.sleep(0.03)
        limiter.request()
        await asyncio.sleep(0.03)
        return len(calls)

    assert asyncio.run(main()) == 2
