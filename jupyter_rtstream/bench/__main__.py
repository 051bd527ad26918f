"""Benchmark rtstream against a raw Tornado WebSocket broadcaster, side by side.

``python -m jupyter_rtstream.bench [--quick | --smoke] [--clients 1,10,100,1000]
[--rates 1000,10000] [--sweep 5000,...] [--duration S] [--bus local|redis]
[--bus-servers N] [--json PATH]``

(``--universe``: the cost per known symbol and per watched topic instead, see
:mod:`.universe`.)

For every (clients, target rate) it runs each system in turn: a fresh server subprocess
(``jupyter server`` with ``feed = "synthetic"``, or the raw Tornado baseline), one client
process connecting every client, a warm-up, then a measurement window. The target rate is
the rate of *delivered* messages, summed over clients: the server publishes
``target_rate / clients`` messages per second and every client receives every message.
Then a saturation sweep (increasing rates at one client count; the most delivered msg/s
wins) and, in the full mode, the server memory of 1,000 idle subscribed clients.
See ``docs/performance.md`` for what is measured and how.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import tornado

from .._version import __version__
from .publisher import (
    BaselineSystem,
    ClientProcess,
    RtstreamSystem,
    System,
    cpu_seconds,
    frame_size,
    rss_bytes,
)
from .redis_bus import RedisBusSystem
from .report import Run, find, ratios, saturation, summary, table, write_json

MIXES = ("market_data",)


@dataclass
class Plan:
    mode: str
    clients: list[int]
    rates: list[float]
    sweep: list[float]
    sweep_clients: int
    duration: float
    warmup: float
    topics: int
    idle_clients: int
    systems: list[str]
    mix: str
    bus: str = "local"
    bus_servers: int = 1


@dataclass
class _Extra:
    json: str | None
    keep: bool


MODES: dict[str, dict[str, Any]] = {
    "full": {
        "clients": [1, 10, 100, 1000],
        "rates": [1000.0, 10000.0],
        "sweep": [10000.0, 20000.0, 40000.0, 80000.0, 160000.0, 320000.0],
        "duration": 8.0,
        "warmup": 1.0,
        "idle_clients": 1000,
    },
    "quick": {
        "clients": [10, 100],
        "rates": [1000.0, 10000.0],
        "sweep": [20000.0, 40000.0, 80000.0, 160000.0],
        "duration": 3.0,
        "warmup": 0.5,
        "idle_clients": 0,
    },
    "smoke": {
        "clients": [2],
        "rates": [200.0],
        "sweep": [400.0],
        "duration": 1.0,
        "warmup": 0.3,
        "idle_clients": 0,
    },
}


def _numbers(text: str, kind: type[int] | type[float]) -> list[Any]:
    try:
        values = [kind(float(part)) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> tuple[Plan, _Extra]:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_rtstream.bench",
        description="rtstream vs raw Tornado: delivered msg/s, latency, server CPU and RSS.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about a minute: 10/100 clients")
    mode.add_argument("--smoke", action="store_true", help="a few seconds, for CI")
    parser.add_argument("--clients", type=lambda t: _numbers(t, int), help="e.g. 1,10,100,1000")
    parser.add_argument("--rates", type=lambda t: _numbers(t, float), help="delivered msg/s")
    parser.add_argument(
        "--sweep", type=lambda t: _numbers(t, float), help="saturation sweep rates (msg/s)"
    )
    parser.add_argument("--sweep-clients", type=int, help="clients of the sweep (default 100)")
    parser.add_argument("--duration", type=float, help="seconds measured per run")
    parser.add_argument("--warmup", type=float, help="seconds between connect and measuring")
    parser.add_argument("--topics", type=int, default=None, help="topics (symbols), default 5")
    parser.add_argument(
        "--idle-clients", type=int, help="idle subscribed clients for the memory run (0: skip)"
    )
    parser.add_argument(
        "--mix",
        default="market_data",
        help="message type mix; only 'market_data' (the streamed hot path) is implemented",
    )
    parser.add_argument(
        "--systems", default="rtstream,baseline", help="which systems to run (default both)"
    )
    parser.add_argument(
        "--bus",
        choices=("local", "redis"),
        default="local",
        help="rtstream's feed: embedded (local) or the feed service over a fresh Redis",
    )
    parser.add_argument(
        "--bus-servers",
        type=int,
        default=1,
        help="--bus redis: servers relaying the feed (clients on the first)",
    )
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--keep", action="store_true", help="keep server logs (print the dir)")
    args = parser.parse_args(argv)
    name = "smoke" if args.smoke else "quick" if args.quick else "full"
    preset = MODES[name]
    mix = args.mix.split("=")[0].strip()
    if mix not in MIXES or "," in args.mix:
        parser.error(f"--mix: only {', '.join(MIXES)} is implemented (got {args.mix!r})")
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not systems or set(systems) - {"rtstream", "baseline"}:
        parser.error("--systems: rtstream, baseline or both")
    clients = args.clients or preset["clients"]
    sweep_clients = args.sweep_clients or (100 if 100 in clients else max(clients))
    return Plan(
        mode=name,
        clients=clients,
        rates=args.rates or preset["rates"],
        sweep=args.sweep if args.sweep is not None else preset["sweep"],
        sweep_clients=sweep_clients,
        duration=args.duration or preset["duration"],
        warmup=args.warmup if args.warmup is not None else preset["warmup"],
        topics=args.topics or (2 if name == "smoke" else 5),
        idle_clients=args.idle_clients if args.idle_clients is not None else preset["idle_clients"],
        systems=systems,
        mix=mix,
        bus=args.bus,
        bus_servers=max(1, args.bus_servers),
    ), _Extra(args.json, args.keep)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def measure(system: System, clients: int, target_rate: float, plan: Plan, workdir: str) -> Run:
    """One run: fresh server, M clients, warm-up, a measured window, everything stopped."""
    publish_rate = target_rate / clients
    system.start(publish_rate)
    try:
        pid = system.pid
        driver = ClientProcess(system.ws_url, system.token, clients, system.subscribe, workdir)
        try:
            ready = driver.expect("ready", timeout=60.0 + 0.05 * clients)
            if ready["connected"] == 0:
                raise RuntimeError(f"no client could connect: {ready['errors']}")
            time.sleep(plan.warmup)
            before = system.counters()
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            driver.send("start")
            driver.expect("started", timeout=30.0)
            time.sleep(plan.duration)
            driver.send("stop")
            got = driver.expect("result", timeout=60.0)
            cpu1, t1 = cpu_seconds(pid), time.monotonic()
            rss = rss_bytes(pid)
            after = system.counters()
        finally:
            driver.close()
    except Exception:
        sys.stderr.write(f"--- {system.name} log tail ---\n{system.log_tail()}\n")
        raise
    finally:
        system.stop()
    delivered = got["delivered"]
    cpu = cpu1 - cpu0
    return {
        "clients": clients,
        "target_rate": target_rate,
        "publish_rate": _r(publish_rate),
        "connected": ready["connected"],
        "failed_connections": ready["failed"],
        "duration_s": _r(got["seconds"]),
        "delivered": delivered,
        "delivered_per_s": _r(got["delivered_per_s"], 1),
        "p50_ms": _r(got["p50_ms"]),
        "p99_ms": _r(got["p99_ms"]),
        "p999_ms": _r(got["p999_ms"]),
        "max_ms": _r(got["max_ms"]),
        "mean_ms": _r(got["mean_ms"]),
        "server_cpu_s": _r(cpu),
        "server_us_per_msg": _r(cpu / delivered * 1e6, 2) if delivered else None,
        "server_cpu_percent": _r(100.0 * cpu / (t1 - t0), 1),
        "server_rss_mib": _r(rss / 2**20, 1),
        "client_cpu_s": _r(got["client_cpu_s"]),
        "client_us_per_msg": _r(got["client_cpu_s"] / delivered * 1e6, 2) if delivered else None,
        "client_cpu_percent": _r(100.0 * got["client_cpu_s"] / got["seconds"], 1),
        "frame_bytes": _r(got["bytes_per_s"] / got["delivered_per_s"], 1)
        if got["delivered_per_s"]
        else None,
        "conflated": int(after.get("conflated", 0)) - int(before.get("conflated", 0)),
        "gaps": got["gaps"],
        "duplicates": got["duplicates"],
        "disconnects": got["disconnects"],
        "connect_s": _r(ready["connect_seconds"]),
        "server_start_s": _r(system.started_in),
    }


def idle_memory(system: System, clients: int, workdir: str) -> dict[str, Any]:
    """Server RSS per idle client: ``clients`` connected and subscribed, one publish/s."""
    system.start(1.0)
    try:
        pid = system.pid
        time.sleep(1.0)
        rss0 = rss_bytes(pid)
        driver = ClientProcess(system.ws_url, system.token, clients, system.subscribe, workdir)
        try:
            ready = driver.expect("ready", timeout=120.0 + 0.05 * clients)
            time.sleep(2.0)
            rss1 = rss_bytes(pid)
        finally:
            driver.close()
    finally:
        system.stop()
    connected = max(1, ready["connected"])
    return {
        "connected": ready["connected"],
        "connect_s": _r(ready["connect_seconds"]),
        "rss_before_mib": _r(rss0 / 2**20, 1),
        "rss_after_mib": _r(rss1 / 2**20, 1),
        "rss_per_client_kib": _r((rss1 - rss0) / connected / 1024, 1),
    }


def _log(message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def _describe(run: Run) -> str:
    return (
        f"{run['delivered_per_s']:>9,.0f} msg/s  p50 {run['p50_ms'] or 0:7.2f} ms  "
        f"p99 {run['p99_ms'] or 0:7.2f} ms  server {run['server_us_per_msg'] or 0:6.1f} µs/msg"
    )


def run_plan(plan: Plan, workdir: str, result: dict[str, Any]) -> None:
    size = result["meta"]["frame_bytes"]
    systems: dict[str, System] = {
        "rtstream": (
            RedisBusSystem(plan.topics, workdir, plan.bus_servers)
            if plan.bus == "redis"
            else RtstreamSystem(plan.topics, workdir)
        ),
        "baseline": BaselineSystem(plan.topics, size, workdir),
    }
    chosen = [systems[name] for name in plan.systems]

    def one(system: System, clients: int, rate: float, phase: str) -> Run:
        _log(f"[{system.name:8}] {phase:5} {clients:>5} clients {rate:>8,.0f} msg/s ...")
        run = {"phase": phase, **measure(system, clients, rate, plan, workdir)}
        _log(f"           {_describe(run)}")
        result[system.name].append(run)
        return run

    for clients in plan.clients:
        for rate in plan.rates:
            for system in chosen:
                one(system, clients, rate, "fixed")

    if plan.sweep:
        saturated: set[str] = set()
        for rate in sorted(plan.sweep):
            for system in chosen:
                if system.name in saturated:
                    continue
                run = find(result[system.name], plan.sweep_clients, rate) or one(
                    system, plan.sweep_clients, rate, "sweep"
                )
                if run["delivered_per_s"] < 0.8 * rate:
                    saturated.add(system.name)
        result["saturation"] = {
            "clients": plan.sweep_clients,
            "rates": sorted(plan.sweep),
            **{s.name: saturation(result[s.name], plan.sweep_clients) for s in chosen},
            # False: even the sweep's top rate was delivered; the maximum is a lower bound.
            **{f"{s.name}_saturated": s.name in saturated for s in chosen},
        }

    if plan.idle_clients > 0:
        idle: dict[str, Any] = {"clients": plan.idle_clients}
        for system in chosen:
            _log(f"[{system.name:8}] idle  {plan.idle_clients:>5} clients ...")
            idle[system.name] = idle_memory(system, plan.idle_clients, workdir)
            _log(f"           {idle[system.name]['rss_per_client_kib']} KiB per client")
        result["idle_memory"] = idle
    else:
        result["idle_memory"] = {
            "clients": 0,
            "skipped": f"{plan.mode} mode; use --idle-clients 1000",
        }


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--universe" in args:  # the universe benchmark has its own options
        from .universe import main as universe_main

        args.remove("--universe")
        return universe_main(args)
    plan, extra = parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:  # 1,000 clients need the fds
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored
        signal.signal(sig, _raise_interrupt)
    workdir = tempfile.mkdtemp(prefix="rtstream-bench-")
    result: dict[str, Any] = {
        "meta": {
            "version": __version__,
            "mode": plan.mode,
            "python": platform.python_version(),
            "tornado": tornado.version,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "topics": plan.topics,
            "mix": plan.mix,
            "bus": plan.bus,
            "bus_servers": plan.bus_servers if plan.bus == "redis" else None,
            "frame_bytes": frame_size(plan.topics),
            "duration_s": plan.duration,
            "warmup_s": plan.warmup,
            "clients": plan.clients,
            "rates": plan.rates,
            "target_rate_means": "delivered messages per second, summed over clients",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_start": os.getloadavg(),
        },
        "rtstream": [],
        "baseline": [],
        "saturation": None,
        "idle_memory": None,
    }
    code = 0
    try:
        run_plan(plan, workdir, result)
    except KeyboardInterrupt:
        _log("interrupted: servers stopped; partial results follow")
        result["interrupted"] = True
        code = 130
    finally:
        if extra.keep:
            _log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    result["meta"]["loadavg_end"] = os.getloadavg()
    result["ratios"] = ratios(result)
    if extra.json:
        write_json(result, extra.json)
    print(table(result))
    print()
    print(summary(result))
    return code


if __name__ == "__main__":
    sys.exit(main())
