"""Frame pacing and render statistics (no widgets)."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_rtstream.widgets._render import FrameLimiter, RenderStats, percentile, summarize

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


def test_steady_requests_are_paced() -> None:
    time = VirtualTime()
    frames: list[float] = []
    limiter = FrameLimiter(
        lambda: frames.append(time.now),
        fps=20,
        coalesce=0.0,
        clock=time.clock,
        call_later=time.call_later,
    )
    for _ in range(1000):  # a request every millisecond for one second
        limiter.request()
        time.advance(0.001)
    assert len(frames) == 2 + 20  # burst + T * fps: the limiter's bound, met exactly
    assert frames[1] - frames[0] < 0.01  # the burst
    # Then one frame per 1 / fps, on the bucket's refill schedule.
    assert frames[2:] == [pytest.approx(100.05 + 0.05 * k) for k in range(20)]


def test_a_tick_at_the_frame_rate_never_waits_for_a_slot() -> None:
    """Requests at exactly ``fps``, out of phase with the first frame: each is sent after
    ``coalesce`` only (a fixed frame clock would make each wait for its slot)."""
    time = VirtualTime()
    waits: list[float] = []
    asked = [0.0]
    limiter = FrameLimiter(
        lambda: waits.append(time.now - asked[0]),
        fps=10,
        clock=time.clock,
        call_later=time.call_later,
    )
    limiter.request()
    time.advance(0.037)
    for _ in range(10):
        asked[0] = time.now
        limiter.request()
        time.advance(0.1)
    assert waits[1:] == [pytest.approx(limiter.coalesce)] * 10


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
