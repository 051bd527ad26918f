"""Benchmark rtstream against the WebSocket servers people pick, side by side.

``python -m jupyter_rtstream.bench [--quick | --smoke] [--clients 1,10,100,1000]
[--rates 1000,10000] [--sweep 5000,...] [--duration S] [--bus local|redis]
[--bus-servers N] [--systems rtstream,baseline,websockets,nodews] [--json PATH]``

(``--universe``: the cost per known symbol and per watched topic instead, see
:mod:`.universe`.)

For every (clients, target rate) it runs each system in turn: a fresh server subprocess
(``jupyter server`` with ``feed = "synthetic"``, or a peer: the raw Tornado baseline, the
``websockets`` library with ``broadcast()``, Node.js ``ws``), one client
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import tornado

from .._version import __version__
from .publisher import (
    BaselineSystem,
    ClientGroup,
    NodeWsSystem,
    RtstreamSystem,
    System,
    WebsocketsSystem,
    cpu_seconds,
    frame_size,
    rss_bytes,
)
from .redis_bus import RedisBusSystem
from .report import SYSTEMS, Run, find, ratios, summary, table, write_json

MIXES = ("market_data",)

#: A row whose (busiest) client process used more CPU than this is flagged ``client_bound``.
CLIENT_BOUND_PERCENT = 90.0


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
    client_procs: int = 1
    #: Sweep: a system stops after this many higher rates that raised its best by < 5 %.
    sweep_patience: int = 2


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
        "--sweep",
        type=lambda t: [] if t.strip() == "none" else _numbers(t, float),
        help="saturation sweep rates (msg/s), or 'none'",
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
        "--systems",
        default="rtstream,baseline",
        help=f"comma-separated, of {','.join(SYSTEMS)} (default rtstream,baseline)",
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
    parser.add_argument(
        "--client-procs",
        type=int,
        default=1,
        help="client processes sharing the clients (so the server, not the client, saturates)",
    )
    parser.add_argument(
        "--sweep-patience",
        type=int,
        default=2,
        help="sweep: stop a system after N higher rates that did not raise its best by 5 %%",
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
    if not systems or set(systems) - set(SYSTEMS):
        parser.error(f"--systems: a comma-separated subset of {','.join(SYSTEMS)}")
    systems = [name for name in SYSTEMS if name in systems]  # rtstream first, no repeats
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
        client_procs=max(1, args.client_procs),
        sweep_patience=max(1, args.sweep_patience),
    ), _Extra(args.json, args.keep)


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def measure(system: System, clients: int, target_rate: float, plan: Plan, workdir: str) -> Run:
    """One run: fresh server, M clients, warm-up, a measured window, everything stopped."""
    publish_rate = target_rate / clients
    system.start(publish_rate)
    try:
        pid = system.pid
        driver = ClientGroup(
            system.ws_url, system.token, clients, system.subscribe, workdir, plan.client_procs
        )
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
        # Of the busiest client process: above CLIENT_BOUND_PERCENT it, not the server, may be
        # what limits the row.
        "client_cpu_percent": _r(got["client_cpu_percent"], 1),
        "client_procs": len(driver.procs),
        "client_bound": got["client_cpu_percent"] > CLIENT_BOUND_PERCENT,
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


def idle_memory(system: System, clients: int, workdir: str, procs: int = 1) -> dict[str, Any]:
    """Server RSS per idle client: ``clients`` connected and subscribed, one publish/s."""
    system.start(1.0)
    try:
        pid = system.pid
        time.sleep(1.0)
        rss0 = rss_bytes(pid)
        driver = ClientGroup(system.ws_url, system.token, clients, system.subscribe, workdir, procs)
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

    def make(name: str) -> System:
        if name == "rtstream":
            if plan.bus == "redis":
                return RedisBusSystem(plan.topics, workdir, plan.bus_servers)
            return RtstreamSystem(plan.topics, workdir)
        peers: dict[str, type[BaselineSystem | WebsocketsSystem | NodeWsSystem]] = {
            "baseline": BaselineSystem,
            "websockets": WebsocketsSystem,
            "nodews": NodeWsSystem,
        }
        return peers[name](plan.topics, size, workdir)

    chosen = [make(name) for name in plan.systems]
    for system in chosen:
        if not isinstance(system, RtstreamSystem):
            result["meta"]["versions"].update(system.versions())

    def one(system: System, clients: int, rate: float, phase: str) -> Run:
        _log(f"[{system.name:10}] {phase:5} {clients:>5} clients {rate:>8,.0f} msg/s ...")
        run = {"phase": phase, **measure(system, clients, rate, plan, workdir)}
        _log(f"           {_describe(run)}")
        result[system.name].append(run)
        return run

    for clients in plan.clients:
        for rate in plan.rates:
            for system in chosen:
                one(system, clients, rate, "fixed")

    if plan.sweep:
        result["saturation"] = sweep(plan, chosen, result, one)

    if plan.idle_clients > 0:
        idle: dict[str, Any] = {"clients": plan.idle_clients}
        for system in chosen:
            _log(f"[{system.name:10}] idle  {plan.idle_clients:>5} clients ...")
            idle[system.name] = idle_memory(system, plan.idle_clients, workdir, plan.client_procs)
            _log(f"           {idle[system.name]['rss_per_client_kib']} KiB per client")
        result["idle_memory"] = idle
    else:
        result["idle_memory"] = {
            "clients": 0,
            "skipped": f"{plan.mode} mode; use --idle-clients 1000",
        }


def sweep(
    plan: Plan,
    chosen: Sequence[System],
    result: dict[str, Any],
    one: Callable[[System, int, float, str], Run],
) -> dict[str, Any]:
    """Offer each system increasing rates; return the most each ever delivered and why its
    sweep stopped.

    A system that misses a rate (delivers under 80 % of it) is still offered the higher
    ones: a server that sheds its backlog or batches harder may deliver more when offered
    more. It stops after ``plan.sweep_patience`` higher rates in a row that did not raise
    its best by 5 %, when a run fails, or at the sweep's top rate.
    """
    clients = plan.sweep_clients
    best: dict[str, float] = {}
    best_run: dict[str, Run] = {}
    first_miss: dict[str, float] = {}
    flat: dict[str, int] = {}
    stopped: dict[str, str] = {}
    for rate in sorted(plan.sweep):
        for system in chosen:
            name = system.name
            if name in stopped:
                continue
            try:
                run = find(result[name], clients, rate) or one(system, clients, rate, "sweep")
            except (RuntimeError, TimeoutError, OSError) as exc:
                stopped[name] = f"a run at {rate:g} msg/s failed: {exc}".splitlines()[0]
                continue
            delivered = run["delivered_per_s"]
            if delivered > best.get(name, 0.0) * 1.05:
                flat[name] = 0
            else:
                flat[name] = flat.get(name, 0) + 1
            if delivered > best.get(name, 0.0):
                best[name], best_run[name] = delivered, run
            if delivered < 0.8 * rate:
                first_miss.setdefault(name, rate)
            if name in first_miss and flat[name] >= plan.sweep_patience:
                stopped[name] = (
                    f"missed {first_miss[name]:g} msg/s (< 80 % delivered), then "
                    f"{flat[name]} higher rate(s) did not raise its best by 5 %"
                )
    out: dict[str, Any] = {"clients": clients, "rates": sorted(plan.sweep)}
    top = max(plan.sweep)
    for system in chosen:
        name = system.name
        top_run = best_run.get(name)
        out[name] = best.get(name)
        # False: it delivered even the sweep's top rate; the maximum is a lower bound.
        out[f"{name}_saturated"] = name in first_miss
        out[f"{name}_at"] = top_run["target_rate"] if top_run is not None else None
        out[f"{name}_client_bound"] = bool(top_run and top_run.get("client_bound"))
        if name in stopped:
            out[f"{name}_stopped"] = stopped[name]
        elif name in first_miss:
            out[f"{name}_stopped"] = (
                f"sweep ended at {top:g} msg/s (missed from {first_miss[name]:g} msg/s on)"
            )
        else:
            out[f"{name}_stopped"] = f"delivered the sweep's top rate, {top:g} msg/s"
    return out


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
            "versions": {"rtstream": __version__, "tornado": tornado.version},
            "systems": plan.systems,
            "cpus": os.cpu_count(),
            "machine": platform.machine(),
            "topics": plan.topics,
            "mix": plan.mix,
            "bus": plan.bus,
            "bus_servers": plan.bus_servers if plan.bus == "redis" else None,
            "client_procs": plan.client_procs,
            "client_bound_percent": CLIENT_BOUND_PERCENT,
            "frame_bytes": frame_size(plan.topics),
            "duration_s": plan.duration,
            "warmup_s": plan.warmup,
            "clients": plan.clients,
            "rates": plan.rates,
            "target_rate_means": "delivered messages per second, summed over clients",
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "loadavg_start": os.getloadavg(),
        },
        **{name: [] for name in SYSTEMS},
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
