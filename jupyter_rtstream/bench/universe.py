"""Universe benchmark: what a server costs per symbol it knows and per topic watched.

``python -m jupyter_rtstream.bench --universe [--sizes 100,1000,10000] [--watched 0,10,100]
[--window S] [--json PATH]`` (also ``python -m jupyter_rtstream.bench.universe``).

For every universe size N it starts one real ``jupyter server`` with the simulated feed at
1 tick/s per symbol (``symbols = U0..U{N-1}``, the shipped ``history_ticks``) and measures:

- ``ready_s``: from spawning the process until Jupyter answers ``rtstream/api/status``
  *and* a WebSocket client got its ``connection_status`` (the server is usable);
- ``warm_s``: until every symbol's seeded history is applied (``feed.warming`` reaches 0;
  equal to ``ready_s`` when the server warms everything before it serves);
- then, for each watched count W (ascending, on the same server: W market_data topics of
  symbols spread evenly over the universe), after a settle time, a window of ``--window``
  seconds: server CPU % (``/proc``), µs of server CPU per live tick (the status API's tick
  counter), RSS, and the watched topics' delivery latency (receive time minus the tick's
  timestamp; p50/p99/max).

A 5-symbol server measured the same way (all 5 watched) gives the reference latency and
the RSS that ``rss_per_symbol_kib`` is counted from: ``(RSS(N) - RSS(5)) / (N - 5)`` at
W = 0. Benchmarks are not tests: no figure here is asserted anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..testing import ServerProcess
from .publisher import cpu_seconds, rss_bytes

DEFAULT_SIZES = (100, 1000, 10_000)
DEFAULT_WATCHED = (0, 10, 100)


def universe_symbols(n: int) -> list[str]:
    """``U0`` .. ``U{n-1}``."""
    return [f"U{i}" for i in range(n)]


def spread(symbols: list[str], k: int) -> list[str]:
    """``k`` symbols spread evenly over ``symbols`` (first, ..., towards the last)."""
    k = min(k, len(symbols))
    if k <= 0:
        return []
    step = len(symbols) / k
    return [symbols[int(i * step)] for i in range(k)]


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1e3 * seconds, 2)


def _r(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


class UniverseServer:
    """One ``jupyter server`` over N simulated symbols at ``tick_rate`` ticks/s each."""

    def __init__(self, n: int, workdir: str, *, tick_rate: float = 1.0) -> None:
        self.symbols = universe_symbols(n)
        config_path = Path(workdir) / f"universe-{n}.json"
        config_path.write_text(
            json.dumps(
                {
                    "RtstreamApp": {
                        "symbols": self.symbols,
                        "max_symbols": max(1000, n),
                        "tick_rate": tick_rate,
                        "seed": 1,
                        "heartbeat_interval": 5.0,
                        "rate_limit": 1000.0,
                        "rate_burst": 1000,
                        "max_subscriptions": 1000,
                    }
                }
            )
        )
        self.server = ServerProcess(
            config={},
            extra_args=(f"--config={config_path}",),
            log_path=Path(workdir) / f"server-{n}.log",
        )

    @property
    def pid(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def status(self) -> dict[str, Any]:
        return dict(self.server.get_json("rtstream/api/status", timeout=30.0))


async def _started(universe: UniverseServer, ready_timeout: float) -> tuple[float, Any]:
    """Start the server; return (seconds until HTTP and WebSocket are both usable, stream)."""
    import jupyter_rtstream

    t0 = time.monotonic()
    await asyncio.to_thread(universe.server.start, ready_timeout)
    server = universe.server
    stream = await asyncio.wait_for(
        jupyter_rtstream.connect(server.url, server.token), timeout=ready_timeout
    )
    return time.monotonic() - t0, stream


async def _wait_warm(universe: UniverseServer, timeout: float) -> bool:
    """Wait until the feed reports no symbol warming (servers that warm everything before
    serving report none at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = await asyncio.to_thread(universe.status)
        if not status["feed"].get("warming", 0):
            return True
        await asyncio.sleep(0.5)
    return False


async def measure_size(
    n: int,
    watched: Sequence[int],
    *,
    window: float,
    settle: float,
    ready_timeout: float,
    workdir: str,
) -> dict[str, Any]:
    """Start a server of ``n`` symbols, then measure one window per watched count."""
    universe = UniverseServer(n, workdir)
    result: dict[str, Any] = {"symbols": n, "windows": []}
    t0 = time.monotonic()
    try:
        ready_s, stream = await _started(universe, ready_timeout)
    except Exception as exc:
        universe.server.close()
        result["error"] = f"not ready: {exc!s:.300}"
        return result
    result["ready_s"] = _r(ready_s)
    try:
        warm = await _wait_warm(universe, ready_timeout)
        result["warm_s"] = _r(time.monotonic() - t0) if warm else None
        latencies: list[float] = []
        recording = [False]

        def on_market(message: Any) -> None:
            if recording[0]:
                latencies.append(time.time() - message.data.timestamp.timestamp())

        stream.on("market_data", on_market)
        subscribed: list[str] = []
        for w in sorted(watched):
            targets = spread(universe.symbols, w)
            for symbol in targets:
                if symbol not in subscribed:
                    await stream.subscribe("market_data", symbol, timeout=60.0)
                    subscribed.append(symbol)
            await asyncio.sleep(settle)
            latencies.clear()
            before = await asyncio.to_thread(universe.status)
            cpu0, m0 = cpu_seconds(universe.pid), time.monotonic()
            recording[0] = True
            await asyncio.sleep(window)
            recording[0] = False
            cpu1, m1 = cpu_seconds(universe.pid), time.monotonic()
            after = await asyncio.to_thread(universe.status)
            rss = rss_bytes(universe.pid)
            ticks = after["feed"]["ticks"] - before["feed"]["ticks"]
            cpu = cpu1 - cpu0
            row = {
                "watched": len(subscribed),
                "seconds": _r(m1 - m0),
                "ticks_per_s": _r(ticks / (m1 - m0), 1),
                "cpu_percent": _r(100.0 * cpu / (m1 - m0), 1),
                "us_per_tick": _r(cpu / ticks * 1e6, 1) if ticks else None,
                "rss_mib": _r(rss / 2**20, 1),
                "messages": len(latencies),
                "p50_ms": _ms(_percentile(latencies, 0.5)),
                "p99_ms": _ms(_percentile(latencies, 0.99)),
                "max_ms": _r(1e3 * max(latencies)) if latencies else None,
                "mean_ms": _r(1e3 * statistics.fmean(latencies)) if latencies else None,
                "loadavg": os.getloadavg()[0],
            }
            result["windows"].append(row)
            _log(
                f"  N={n:>6} W={row['watched']:>4}: cpu {row['cpu_percent']}%  "
                f"{row['us_per_tick']} µs/tick  {row['ticks_per_s']} ticks/s  "
                f"rss {row['rss_mib']} MiB  p99 {row['p99_ms']} ms ({row['messages']} msgs)"
            )
    finally:
        await stream.close()
        universe.server.close()
    return result


async def run(
    sizes: Sequence[int],
    watched: Sequence[int],
    *,
    window: float,
    settle: float,
    ready_timeout: float,
) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="rtstream-universe-")
    result: dict[str, Any] = {
        "meta": {
            "sizes": list(sizes),
            "watched": list(watched),
            "tick_rate": 1.0,
            "window_s": window,
            "settle_s": settle,
            "cpus": os.cpu_count(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_start": os.getloadavg(),
        },
        "reference": None,
        "sizes": [],
    }
    _log("reference: 5 symbols, all watched ...")
    reference = await measure_size(
        5, [0, 5], window=window, settle=settle, ready_timeout=ready_timeout, workdir=workdir
    )
    result["reference"] = reference
    ref_rss = reference["windows"][0]["rss_mib"] if reference.get("windows") else None
    ref_p99 = reference["windows"][-1]["p99_ms"] if reference.get("windows") else None
    for n in sizes:
        _log(f"universe: {n} symbols ...")
        size = await measure_size(
            n, watched, window=window, settle=settle, ready_timeout=ready_timeout, workdir=workdir
        )
        windows = size.get("windows") or []
        if windows and ref_rss is not None:
            size["rss_per_symbol_kib"] = _r((windows[0]["rss_mib"] - ref_rss) * 1024 / (n - 5), 1)
        for row in windows:
            if ref_p99 and row["p99_ms"] is not None:
                row["p99_vs_5_symbols"] = _r(row["p99_ms"] / ref_p99)
        result["sizes"].append(size)
    result["meta"]["loadavg_end"] = os.getloadavg()
    return result


def table(result: dict[str, Any]) -> str:
    """A Markdown table: one row per (symbols, watched)."""
    lines = [
        "| symbols | ready s | warm s | watched | CPU % | µs/tick | RSS MiB | KiB/symbol "
        "| p99 ms (5-symbol ref) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    ref = result.get("reference") or {}
    ref_p99 = (ref.get("windows") or [{}])[-1].get("p99_ms")
    rows = [ref, *result["sizes"]]
    for size in rows:
        if not size:
            continue
        if size.get("error"):
            lines.append(f"| {size['symbols']:,} | {size['error']} | | | | | | | |")
            continue
        for row in size["windows"]:
            lines.append(
                f"| {size['symbols']:,} | {size['ready_s']} | {size.get('warm_s')} "
                f"| {row['watched']} | {row['cpu_percent']} | {row['us_per_tick']} "
                f"| {row['rss_mib']} | {size.get('rss_per_symbol_kib', '')} "
                f"| {row['p99_ms']} ({ref_p99}) |"
            )
    return "\n".join(lines)


def _numbers(text: str) -> list[int]:
    try:
        values = [int(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers >= 0: {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_rtstream.bench --universe",
        description="Server cost per known symbol and per watched topic (1 tick/s each).",
    )
    parser.add_argument("--sizes", type=_numbers, default=list(DEFAULT_SIZES))
    parser.add_argument("--watched", type=_numbers, default=list(DEFAULT_WATCHED))
    parser.add_argument("--window", type=float, default=10.0, help="seconds per window")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before a window")
    parser.add_argument(
        "--ready-timeout", type=float, default=600.0, help="seconds to wait for ready / warm"
    )
    parser.add_argument("--smoke", action="store_true", help="100 symbols, 0/2 watched, 1 s")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.sizes, args.watched, args.window, args.settle = [100], [0, 2], 1.0, 0.5
    if any(n <= 5 for n in args.sizes):
        parser.error("--sizes: more than 5 symbols (5 is the reference server)")
    result = asyncio.run(
        run(
            args.sizes,
            args.watched,
            window=args.window,
            settle=args.settle,
            ready_timeout=args.ready_timeout,
        )
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
