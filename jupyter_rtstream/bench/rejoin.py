"""How fast clients rejoin a restarted server, and how spread a reconnect storm is (issue 16).

``python -m jupyter_rtstream.bench.rejoin [--cycles 30] [--clients 500] [--json PATH]``

(a) **kill -9 rejoin**: one client subscribed to ``market_data:AAPL`` of a real
``jupyter server``; the server is killed with SIGKILL (no close frame), restarted on the
same port and database, and the time from "the restarted server listens" (a TCP connect to
its port succeeds, polled every 5 ms) to "the client delivered its first message" is
recorded. p50 / p95 / max over ``--cycles`` kills, at random points of the connection.

(b) **graceful-restart storm**: ``--clients`` streams in this one process (asyncio,
loopback), subscribed to ``alerts:*``; the server is stopped with SIGTERM (it closes every
client with 1001 and a spread ``retry_after``) and started again. Each client's reconnect
(its ``connected`` state) is put in a 100 ms bucket, counted from the moment the server
listens again; the report is the largest bucket's share of all reconnects.

Not a test: nothing is asserted. It runs against whatever ``jupyter_rtstream`` is on the
path, so ``PYTHONPATH=<old checkout> python path/to/rejoin.py`` measures an older client
and server with the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from jupyter_rtstream.client import ConnectionState, Stream
from jupyter_rtstream.testing import ServerProcess, restart_timed

CONFIG: dict[str, dict[str, Any]] = {
    "RtstreamApp": {
        "seed": 16,
        "tick_rate": 10.0,
        "heartbeat_interval": 2.0,
        # The storm's 500 clients share the one server token (one user).
        "max_connections_per_user": 1_000,
    },
}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


async def rejoin(cycles: int, seed: int = 16) -> dict[str, Any]:
    rng = random.Random(seed)
    server = ServerProcess(config=CONFIG)
    await asyncio.to_thread(server.start)
    stream = Stream(server.url, server.token)
    arrivals: list[float] = []
    stream.on("market_data", lambda _m: arrivals.append(time.monotonic()))
    times: list[float] = []
    try:
        await stream.__aenter__()
        await stream.subscribe("market_data", "AAPL")
        for cycle in range(cycles):
            await asyncio.sleep(rng.uniform(0.2, 2.0))  # a random point of the connection
            server.kill()
            listen = await restart_timed(server)
            deadline = time.monotonic() + 90.0
            while not any(t > listen for t in arrivals) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.005)
            first = next((t for t in arrivals if t > listen), None)
            times.append((first - listen) if first is not None else float("inf"))
            print(f"  kill -9 #{cycle + 1}: first message {times[-1]:.3f}s after listen")
            arrivals.clear()
    finally:
        await stream.close()
        await asyncio.to_thread(server.close)
    return {
        "cycles": cycles,
        "p50_s": statistics.median(times),
        "p95_s": _percentile(times, 0.95),
        "max_s": max(times),
        "all_s": [round(t, 3) for t in times],
    }


async def storm(clients: int) -> dict[str, Any]:
    config = {"RtstreamApp": {**CONFIG["RtstreamApp"], "tick_rate": 1.0}}
    server = ServerProcess(config=config)
    await asyncio.to_thread(server.start)
    streams = [Stream(server.url, server.token) for _ in range(clients)]
    connected: list[list[float]] = [[] for _ in streams]

    def recorder(times: list[float]) -> Any:
        def on_state(change: Any) -> None:
            if change.state is ConnectionState.CONNECTED:
                times.append(time.monotonic())

        return on_state

    for stream, times in zip(streams, connected, strict=True):
        stream.on("state", recorder(times))
    try:
        for start in range(0, clients, 50):  # bounded: 50 handshakes at a time
            batch = streams[start : start + 50]
            for stream in batch:
                stream.start()
            await asyncio.gather(*(s.wait_connected(60) for s in batch))
        await asyncio.gather(*(s.subscribe("alerts", "*") for s in streams))
        for times in connected:
            times.clear()
        stopped = time.monotonic()
        await asyncio.to_thread(server.stop)
        listen = await restart_timed(server)
        deadline = time.monotonic() + 120.0
        while not all(connected) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        back = [times[0] - listen for times in connected if times]
    finally:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
        await asyncio.to_thread(server.close)
    buckets = Counter(int(max(0.0, t) // 0.1) for t in back)
    top_bucket, top_count = max(buckets.items(), key=lambda kv: kv[1])
    per_second = Counter(int(max(0.0, t)) for t in back)
    return {
        "clients": clients,
        "reconnected": len(back),
        "restart_s": round(listen - stopped, 2),
        "first_s": round(min(back), 3),
        "last_s": round(max(back), 3),
        "max_bucket_share": top_count / max(1, len(back)),
        "max_bucket": f"{top_bucket / 10:.1f}-{(top_bucket + 1) / 10:.1f}s: {top_count}",
        "buckets_100ms": {f"{k / 10:.1f}": v for k, v in sorted(buckets.items())},
        "per_second": dict(sorted(per_second.items())),
    }


async def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--skip-storm", action="store_true")
    parser.add_argument("--skip-rejoin", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result: dict[str, Any] = {}
    if not args.skip_rejoin:
        print(f"(a) kill -9 rejoin, {args.cycles} cycles")
        result["rejoin"] = r = await rejoin(args.cycles)
        print(f"rejoin: p50 {r['p50_s']:.3f}s  p95 {r['p95_s']:.3f}s  max {r['max_s']:.3f}s")
    if not args.skip_storm:
        print(f"(b) graceful restart storm, {args.clients} clients")
        result["storm"] = s = await storm(args.clients)
        print(
            f"storm: {s['reconnected']}/{s['clients']} back, from {s['first_s']}s to "
            f"{s['last_s']}s after listen; largest 100 ms bucket {s['max_bucket']} "
            f"({s['max_bucket_share']:.1%}); per second {s['per_second']}"
        )
    if args.json:
        text = json.dumps(result, indent=1)
        await asyncio.to_thread(Path(args.json).write_text, text)
    return result


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
