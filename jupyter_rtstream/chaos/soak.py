"""Scenario 7, soak: ``duration`` seconds at the default simulated feed with ``clients``
streams that leave and come back at random.

Each stream subscribes to two random topics; a churn task closes a random stream and opens
a fresh one (new connection, new subscriptions) so that each client reconnects every
``churn_every`` seconds on average. Every 5 s: the server's RSS, open file descriptors,
session count and every topic's replay buffer length. Figures: RSS and fd slopes over the
second half of the run (after warm-up), the largest replay buffer seen.

Invariants: after the run (every stream connected) the server holds exactly as many
sessions as open streams, no more file descriptors than after warm-up (+10), and no replay
buffer ever exceeded its bound. RSS flat (growth over the second half <= 8 MiB) is judged
under load only.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any

from ..client import Stream
from ..testing import ServerProcess
from ._common import gather_bounded, open_fds, rest, rss_bytes, server_config
from .result import Result, slope

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")
KINDS = ("market_data", "technical_indicators", "analytics")
REPLAY_SIZE = 1000
REPLAY_SECONDS = 60.0


async def _open(server: ServerProcess, rng: random.Random) -> Stream:
    stream = Stream(server.url, server.token, rng=random.Random(rng.random()))
    await stream.__aenter__()
    for _ in range(2):
        await stream.subscribe(rng.choice(KINDS), rng.choice(SYMBOLS), timeout=60)
    return stream


async def run(
    duration: float = 1800.0, clients: int = 200, churn_every: float = 30.0, seed: int = 7
) -> Result:
    rng = random.Random(seed)
    result = Result(
        scenario="7. soak",
        load=f"{duration / 60:g} min, default simulated feed (10 ticks/s per symbol), "
        f"{clients} streams, each reconnecting every ~{churn_every:g} s at random",
        faults="client churn: a random stream closed and replaced "
        f"{clients / churn_every:.1f} times/s",
    )
    server = ServerProcess(
        config=server_config(
            heartbeat_interval=15.0,
            replay_buffer_size=REPLAY_SIZE,
            replay_buffer_seconds=REPLAY_SECONDS,
        )
    )
    await asyncio.to_thread(server.start)
    assert server.proc is not None
    pid = server.proc.pid
    streams: list[Stream] = []
    samples: list[dict[str, Any]] = []
    churned = 0
    churn: asyncio.Task[None] | None = None
    try:
        streams = await gather_bounded([_open(server, rng) for _ in range(clients)], 25)
        warm_fds = open_fds(pid)

        stop = asyncio.Event()

        async def churner() -> None:
            # Stopped by ``stop``, never cancelled: a cancel could land inside ``close()`` and
            # leave a stream closing but not closed (a 30-min run once ended on one).
            nonlocal churned
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), rng.expovariate(clients / churn_every))
                if stop.is_set():
                    return
                i = rng.randrange(len(streams))
                old = streams[i]
                await old.close()
                with contextlib.suppress(Exception):
                    streams[i] = await _open(server, rng)
                    churned += 1

        churn = asyncio.ensure_future(churner())
        began = time.monotonic()
        while time.monotonic() - began < duration:
            status = await rest(server, "GET", "rtstream/api/status")
            samples.append(
                {
                    "t": time.monotonic() - began,
                    "rss": rss_bytes(pid),
                    "fds": open_fds(pid),
                    "sessions": status["counters"]["clients"],
                    "max_buffered": max((t["buffered"] for t in status["topics"]), default=0),
                }
            )
            await asyncio.sleep(5.0)
        stop.set()
        await churn
        open_streams = [s for s in streams if not s.closed]
        await gather_bounded([s.wait_connected(60) for s in open_streams], 50)

        async def sessions() -> int:
            body = await rest(server, "GET", "rtstream/api/status")
            return int(body["counters"]["clients"])

        deadline = time.monotonic() + 30
        count = await sessions()
        while count != len(open_streams) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            count = await sessions()
        end_fds = open_fds(pid)
    finally:
        if churn is not None:
            churn.cancel()
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
        await asyncio.to_thread(server.close)
    half = [s for s in samples if s["t"] >= duration / 2] or samples
    hours = 3600.0
    rss_slope = slope([(s["t"], s["rss"] / (1 << 20)) for s in half]) * hours
    fd_slope = slope([(s["t"], s["fds"]) for s in half]) * hours
    growth = rss_slope * (duration / 2) / hours
    max_buffered = max((s["max_buffered"] for s in samples), default=0)
    bound = max(REPLAY_SIZE, int(REPLAY_SECONDS * 10 * 1.5))
    result.figure = (
        f"{churned} reconnects; server RSS {samples[0]['rss'] / (1 << 20):.0f} -> "
        f"{samples[-1]['rss'] / (1 << 20):.0f} MiB, slope over the second half "
        f"{rss_slope:+.1f} MiB/h; fds {warm_fds} after warm-up, {end_fds} at the end "
        f"(slope {fd_slope:+.1f}/h); sessions at the end {count} for {len(open_streams)} "
        f"streams; largest replay buffer {max_buffered} messages (bound {bound})"
    )
    result.goal("sessions == open streams at the end", count == len(open_streams), f"{count}")
    result.goal("no fd growth (end <= warm-up + 10)", end_fds <= warm_fds + 10, f"{end_fds}")
    result.goal("replay buffers within their bounds", max_buffered <= bound, f"max {max_buffered}")
    result.goal(
        "RSS flat (growth over the second half <= 8 MiB)",
        growth <= 8.0,
        f"{growth:+.1f} MiB",
        timed=True,
    )
    result.details = {
        "duration_s": duration,
        "clients": clients,
        "reconnects": churned,
        "rss_slope_mib_per_h": round(rss_slope, 2),
        "fd_slope_per_h": round(fd_slope, 2),
        "warm_fds": warm_fds,
        "end_fds": end_fds,
        "max_buffered": max_buffered,
        "samples": samples,
    }
    return result
