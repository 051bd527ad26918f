"""How many servers one Redis carries: the shared feed relayed by N real servers, measured.

``python -m jupyter_rtstream.bench.bus_capacity [--servers 20] [--tick-rate 10,200]
[--symbols AAPL,...] [--window 20] [--json PATH]``

Per tick rate: a fresh ``redis-server``, the feed service (the simulated market, so every
tick also yields indicators and analytics), and ``--servers`` ``jupyter server`` processes
with ``bus = "redis"`` and no WebSocket clients, so what is measured is the relay itself:
what Redis spends on the feed's writes and on every server's reads, and what each server
spends relaying. ``INFO commandstats`` is reset after a warm-up, then read after the window
together with Redis' CPU time (``INFO cpu``), each process' CPU time (``/proc``) and each
server's relayed count (``rtstream/api/status``). Docs: ``docs/deploy-jupyterhub.md``
(capacity model).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis

from ..testing import ServerProcess
from ..testing_bus import FeedProcess, RedisProcess

_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def _relayed(server: ServerProcess) -> int:
    request = urllib.request.Request(
        server.url + "rtstream/api/status",
        headers={"Authorization": f"token {server.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return int(json.load(answer)["feed"]["relayed"])


def _stats(client: redis.Redis) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for name, values in client.info("commandstats").items():
        command = name.removeprefix("cmdstat_")
        if command in ("xadd", "xread", "xrange", "xrevrange"):
            out[command] = {"calls": float(values["calls"]), "usec": float(values["usec"])}
    return out


def measure(servers: int, tick_rate: float, symbols: str, window: float) -> dict[str, Any]:
    """One run: Redis + feed + ``servers`` relaying servers, measured over ``window`` s."""
    store = RedisProcess().start()
    feed: FeedProcess | None = None
    fleet: list[ServerProcess] = []
    client = redis.Redis(port=store.port, decode_responses=True)
    try:
        feed = FeedProcess(
            store.url, "--feed", "simulated", "--symbols", symbols, "--tick-rate", str(tick_rate)
        ).start()
        deadline = time.monotonic() + 60
        while not client.hlen("rtstream:instruments"):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the feed did not publish:\n{feed.log()[-2000:]}")
            time.sleep(0.1)
        fleet = [
            ServerProcess(config={"RtstreamApp": {"bus": "redis", "redis_url": store.url}})
            for _ in range(servers)
        ]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda s: s.start(timeout=180), fleet))
        time.sleep(5.0)  # every server past its warm-up XREVRANGE, reading live
        pids = [s.proc.pid for s in fleet if s.proc is not None]
        assert feed.proc is not None
        client.config_resetstat()
        began = time.monotonic()
        relayed0 = [_relayed(s) for s in fleet]
        cpu0 = [_cpu_seconds(p) for p in pids]
        feed_cpu0 = _cpu_seconds(feed.proc.pid)
        redis_cpu0 = _redis_cpu(client)
        time.sleep(window)
        elapsed = time.monotonic() - began
        relayed = [(_relayed(s) - r0) / elapsed for s, r0 in zip(fleet, relayed0, strict=True)]
        cpu = [(_cpu_seconds(p) - c0) / elapsed * 100 for p, c0 in zip(pids, cpu0, strict=True)]
        stats = _stats(client)
        redis_cpu = (_redis_cpu(client) - redis_cpu0) / elapsed * 100
        feed_cpu = (_cpu_seconds(feed.proc.pid) - feed_cpu0) / elapsed * 100
    finally:
        client.close()
        for server in fleet:
            server.close()
        if feed is not None:
            feed.stop()
        store.close()
    xread = stats.get("xread", {"calls": 0.0, "usec": 0.0})
    xadd = stats.get("xadd", {"calls": 0.0, "usec": 0.0})
    return {
        "servers": servers,
        "tick_rate": tick_rate,
        "symbols": symbols,
        "window_s": round(elapsed, 2),
        "published_msg_s": round(xadd["calls"] / elapsed, 1),
        "relayed_msg_s_per_server": {
            "min": round(min(relayed), 1),
            "median": round(statistics.median(relayed), 1),
        },
        "server_cpu_pct": {
            "median": round(statistics.median(cpu), 2),
            "max": round(max(cpu), 2),
        },
        "feed_cpu_pct": round(feed_cpu, 2),
        "redis_cpu_pct": round(redis_cpu, 2),
        "xadd_usec_per_call": round(xadd["usec"] / max(xadd["calls"], 1), 2),
        "xread_calls_s_per_server": round(xread["calls"] / elapsed / servers, 1),
        "xread_usec_per_call": round(xread["usec"] / max(xread["calls"], 1), 2),
        "redis_cpu_pct_per_server": round(redis_cpu / servers, 3),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| servers | tick rate | published msg/s | relayed msg/s per server (min) "
        "| server CPU % (median / max) | feed CPU % | Redis CPU % | Redis CPU % per server "
        "| XADD µs | XREAD µs/call, calls/s per server |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['servers']} | {r['tick_rate']:g} | {r['published_msg_s']:,.0f} "
            f"| {r['relayed_msg_s_per_server']['min']:,.0f} "
            f"| {r['server_cpu_pct']['median']:.1f} / {r['server_cpu_pct']['max']:.1f} "
            f"| {r['feed_cpu_pct']:.1f} | {r['redis_cpu_pct']:.1f} "
            f"| {r['redis_cpu_pct_per_server']:.2f} | {r['xadd_usec_per_call']:.1f} "
            f"| {r['xread_usec_per_call']:.0f}, {r['xread_calls_s_per_server']:.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_rtstream.bench.bus_capacity")
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--tick-rate", default="10,200", help="feed rounds per second, a list")
    parser.add_argument("--symbols", default="AAPL,MSFT,GOOGL,AMZN,TSLA")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = []
    for rate in (float(r) for r in args.tick_rate.split(",")):
        row = measure(args.servers, rate, args.symbols, args.window)
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    print(_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"load": os.getloadavg(), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
