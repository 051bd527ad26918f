"""Frame pacing and render statistics (no widgets)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from jupyter_rtstream.widgets._render import FrameLimiter, RenderStats, percentile, summarize


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
    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        frames: list[float] = []
        limiter = FrameLimiter(lambda: frames.append(loop.time()), fps=10, coalesce=0.005)
        for _ in range(500):
            limiter.request()
        await asyncio.sleep(0.05)
        return frames

    assert len(asyncio.run(main())) == 1


def test_steady_requests_are_paced() -> None:
    async def main() -> tuple[list[float], float]:
        loop = asyncio.get_running_loop()
        frames: list[float] = []
        limiter = FrameLimiter(lambda: frames.append(loop.time()), fps=20, coalesce=0.0)
        start = loop.time()
        while loop.time() - start < 1.0:
            limiter.request()
            await asyncio.sleep(0.001)
        elapsed = loop.time() - start
        await asyncio.sleep(0.1)
        limiter.close()
        return frames, elapsed

    frames, elapsed = asyncio.run(main())
    assert len(frames) <= elapsed * 20 + 2  # burst (2) + 20 per second
    assert len(frames) >= elapsed * 20 * 0.7  # paced, not starved
    gaps = [b - a for a, b in itertools.pairwise(frames)]
    assert gaps[0] < 0.01  # the burst
    assert min(gaps[1:]) >= 0.05 - 0.01  # then 1 / fps apart (timers jitter a little)


def test_a_tick_at_the_frame_rate_never_waits_for_a_slot() -> None:
    """Requests at exactly ``fps``, out of phase with the first frame: each is sent after
    ``coalesce`` only (a fixed frame clock would make each wait for its slot)."""

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        waits: list[float] = []
        asked = [0.0]
        limiter = FrameLimiter(lambda: waits.append(loop.time() - asked[0]), fps=10)
        limiter.request()
        await asyncio.sleep(0.037)
        start = loop.time()
        for n in range(10):
            await asyncio.sleep(max(0.0, start + n * 0.1 - loop.time()))
            asked[0] = loop.time()
            limiter.request()
        await asyncio.sleep(0.05)
        return waits[1:]

    waits = asyncio.run(main())
    assert len(waits) == 10
    assert max(waits) < 0.05, waits


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
