"""Micro-benchmark of live frames (not a test: timings vary by machine).

``python -m jupyter_rtstream.bench.frames [--window 10000] [--messages 100000]`` prints:

- the append cost per message at a full ``window`` (``market_data`` and
  ``technical_indicators``: a message's row extracted and appended, chunk conversions
  included, i.e. amortised);
- the cost of reading ``frame.df`` at ``window`` rows right after an append (the cache is
  invalid, so the DataFrame is rebuilt: the worst case);
- on a running event loop fed 1,000 msg/s (10 messages every 10 ms) while a reader reads
  ``frame.df`` every 100 ms: the longest stall of the loop, measured by a 1 ms ticker.

Needs the ``jupyter-rtstream[pandas]`` extra. No server, no sockets: the messages are
pydantic models built beforehand, as the stream hands them to a frame.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from datetime import datetime, timedelta, timezone

from ..client.frames import LiveFrame
from ..core.messages import (
    MarketData,
    MarketDataPayload,
    StreamedMessage,
    TechnicalIndicators,
    TechnicalIndicatorsPayload,
)
from ..core.vocabulary import INDICATOR_KEYS

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)


def messages(kind: str, n: int) -> list[StreamedMessage]:
    out: list[StreamedMessage] = []
    for i in range(n):
        at = T0 + timedelta(milliseconds=100 * i)
        if kind == "market_data":
            out.append(
                MarketData(
                    topic="market_data:BENCH",
                    seq=i + 1,
                    timestamp=at,
                    data=MarketDataPayload(
                        instrument_id=1,
                        symbol="BENCH",
                        price=100.0 + (i % 100) / 10,
                        volume=100.0 * (1 + i % 7),
                        timestamp=at,
                        change_percent=0.01 * (i % 13),
                    ),
                )
            )
        else:
            values: dict[str, float | None] = {
                name: 100.0 + j + i % 10 for j, name in enumerate(INDICATOR_KEYS)
            }
            out.append(
                TechnicalIndicators(
                    topic="technical_indicators:BENCH",
                    seq=i + 1,
                    timestamp=at,
                    data=TechnicalIndicatorsPayload(
                        instrument_id=1, symbol="BENCH", indicators=values, calculated_at=at
                    ),
                )
            )
    return out


def _frame(kind: str, window: int) -> LiveFrame:
    return LiveFrame(None, "BENCH", kind, window=window)  # type: ignore[arg-type]


def append_cost(kind: str, window: int, n: int) -> float:
    """µs per appended message, amortised, with the frame already full."""
    batch = messages(kind, window + n)
    frame = _frame(kind, window)
    for message in batch[:window]:
        frame.append(message)
    gc.collect()
    started = time.perf_counter()
    for message in batch[window:]:
        frame.append(message)
    elapsed = time.perf_counter() - started
    assert len(frame.df) == window
    return elapsed / n * 1e6


def read_cost(kind: str, window: int, reads: int = 30) -> tuple[float, float]:
    """(median, max) ms of ``frame.df`` at ``window`` rows just after an append."""
    batch = messages(kind, window + reads)
    frame = _frame(kind, window)
    for message in batch[:window]:
        frame.append(message)
    costs = []
    for message in batch[window:]:
        frame.append(message)
        started = time.perf_counter()
        df = frame.df
        costs.append((time.perf_counter() - started) * 1e3)
        assert len(df) == window
    return statistics.median(costs), max(costs)


async def _stall(kind: str, window: int, rate: int, seconds: float) -> tuple[float, int]:
    batch = messages(kind, window + int(rate * seconds) + rate)
    frame = _frame(kind, window)
    for message in batch[:window]:
        frame.append(message)
    loop = asyncio.get_running_loop()
    position = window
    reads = 0
    stop = loop.time() + seconds

    async def feed() -> None:
        nonlocal position
        while loop.time() < stop:
            for message in batch[position : position + rate // 100]:
                frame.append(message)
            position += rate // 100
            await asyncio.sleep(0.01)

    async def read() -> None:
        nonlocal reads
        while loop.time() < stop:
            _ = frame.df
            reads += 1
            await asyncio.sleep(0.1)

    worst = 0.0

    async def ticker() -> None:
        nonlocal worst
        while loop.time() < stop:
            before = loop.time()
            await asyncio.sleep(0.001)
            worst = max(worst, loop.time() - before - 0.001)

    await asyncio.gather(feed(), read(), ticker())
    return worst * 1e3, reads


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--window", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    window = args.window
    print(f"live frames, window {window:,} rows")
    for kind in ("market_data", "technical_indicators"):
        cost = append_cost(kind, window, args.messages)
        median, worst = read_cost(kind, window)
        print(
            f"  {kind:21s} append {cost:5.2f} µs/msg   read df {median:6.2f} ms median, "
            f"{worst:6.2f} ms max"
        )
    for kind in ("market_data", "technical_indicators"):
        stall, reads = asyncio.run(_stall(kind, window, 1000, args.seconds))
        print(
            f"  {kind:21s} 1,000 msg/s + {reads} reads of df: max event-loop stall {stall:6.2f} ms"
        )


if __name__ == "__main__":
    main()
