"""Tables, ratios and the JSON document of a benchmark run."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Run = dict[str, Any]


def find(runs: Sequence[Run], clients: int, target_rate: float) -> Run | None:
    for run in runs:
        if run["clients"] == clients and run["target_rate"] == target_rate:
            return run
    return None


def saturation(runs: Sequence[Run], clients: int) -> float | None:
    """Most delivered msg/s over every run with ``clients`` clients (None: no such run)."""
    values = [r["delivered_per_s"] for r in runs if r["clients"] == clients]
    return max(values) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


#: Every system the benchmark knows, rtstream first; the others are its peers.
SYSTEMS = ("rtstream", "baseline", "websockets", "nodews")
PEERS = SYSTEMS[1:]


def _pair(rt: Run | None, other: Run | None, key: str) -> float | None:
    return _ratio(rt[key], other[key]) if rt is not None and other is not None else None


def ratios_vs(result: dict[str, Any], peer: str) -> dict[str, Any]:
    """rtstream / ``peer``: saturation throughput, p99 and server µs per delivered message at
    10k msg/s over 100 clients, and p99 / server µs per message for every run both made."""
    rt, other = result.get("rtstream") or [], result.get(peer) or []
    sat = result.get("saturation") or {}
    at_10k_100 = (find(rt, 100, 10_000.0), find(other, 100, 10_000.0))
    p99_by_run: dict[str, float | None] = {}
    us_by_run: dict[str, float | None] = {}
    for run in rt:
        match = find(other, run["clients"], run["target_rate"])
        if match is not None:
            key = f"{run['clients']}@{run['target_rate']:g}"
            p99_by_run[key] = _ratio(run["p99_ms"], match["p99_ms"])
            us_by_run[key] = _ratio(run["server_us_per_msg"], match["server_us_per_msg"])
    return {
        "saturation_throughput": _ratio(sat.get("rtstream"), sat.get(peer)),
        "saturation_throughput_bound": _bound_kind(sat, peer),
        "p99_10k_100_clients": _pair(*at_10k_100, "p99_ms"),
        "p99_by_run": p99_by_run,
        "server_us_per_msg_10k_100_clients": _pair(*at_10k_100, "server_us_per_msg"),
        "server_us_per_msg_by_run": us_by_run,
    }


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """rtstream / baseline at the top level (as before the peers existed), rtstream / every
    peer that ran under ``vs``, and rtstream / the best peer at 10k msg/s over 100 clients
    (the lowest server µs per message and the lowest p99 of any peer) under ``best_peer``."""
    out = ratios_vs(result, "baseline")
    out["vs"] = {peer: ratios_vs(result, peer) for peer in PEERS if result.get(peer)}
    rt = find(result.get("rtstream") or [], 100, 10_000.0)
    peers = [r for p in PEERS if (r := find(result.get(p) or [], 100, 10_000.0)) is not None]
    best: dict[str, Any] = {}
    if rt is not None and peers:
        for key in ("server_us_per_msg", "p99_ms"):
            values = [r[key] for r in peers if r[key] is not None]
            best[f"{key}_10k_100_clients"] = _ratio(rt[key], min(values)) if values else None
    sat = result.get("saturation") or {}
    sat_peers = [sat[p] for p in PEERS if sat.get(p) is not None]
    if sat.get("rtstream") is not None and sat_peers:
        best["saturation_throughput"] = _ratio(sat["rtstream"], max(sat_peers))
    out["best_peer"] = best
    return out


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


COLUMNS = (
    ("clients", "clients", 0),
    ("target/s", "target_rate", 0),
    ("system", "system", 0),
    ("delivered/s", "delivered_per_s", 0),
    ("p50 ms", "p50_ms", 2),
    ("p99 ms", "p99_ms", 2),
    ("p99.9 ms", "p999_ms", 2),
    ("max ms", "max_ms", 1),
    ("srv µs/msg", "server_us_per_msg", 1),
    ("srv cpu%", "server_cpu_percent", 0),
    ("cli µs/msg", "client_us_per_msg", 1),
    ("cli cpu%", "client_cpu_percent", 0),
    ("RSS MiB", "server_rss_mib", 1),
    ("conflated", "conflated", 0),
    ("gaps", "gaps", 0),
    ("bound", "bound", 0),
)


def table(result: dict[str, Any]) -> str:
    """The runs, every system side by side per (clients, rate), as Markdown."""
    rows: list[list[str]] = []
    systems = [name for name in SYSTEMS if result.get(name)]
    keys = sorted(
        {(r["phase"], r["clients"], r["target_rate"]) for name in systems for r in result[name]},
        key=lambda k: (k[0] != "fixed", k[1], k[2]),
    )
    for phase, clients, rate in keys:
        for system in systems:
            run = next(
                (
                    r
                    for r in result[system]
                    if (r["phase"], r["clients"], r["target_rate"]) == (phase, clients, rate)
                ),
                None,
            )
            if run is None:
                continue
            run = {
                **run,
                "system": system if phase == "fixed" else f"{system} (sweep)",
                "bound": "client" if run.get("client_bound") else "",
            }
            rows.append([_fmt(run.get(key), digits) for _, key, digits in COLUMNS])
    head = [title for title, _, _ in COLUMNS]
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)
    ]
    lines = [
        "| " + " | ".join(h.rjust(w) for h, w in zip(head, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|",
    ]
    lines += [
        "| " + " | ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    return "\n".join(lines)


def summary(result: dict[str, Any]) -> str:
    """Saturation, idle memory and ratios, a few lines of Markdown."""
    out = []
    systems = [name for name in SYSTEMS if result.get(name)]
    sat = result.get("saturation")
    if sat:
        rates = ", ".join(f"{r:g}" for r in sat["rates"])
        figures = ", ".join(
            f"{name} {_bound(sat, name)}{_fmt(sat.get(name), 0)} msg/s"
            for name in systems
            if name in sat
        )
        out.append(f"- saturation at {sat['clients']} clients (sweep {rates} msg/s): {figures}")
        for name in systems:
            if f"{name}_stopped" in sat:
                bound = " (that row is client-bound)" if sat.get(f"{name}_client_bound") else ""
                out.append(
                    f"  - {name}: best at {_fmt(sat.get(f'{name}_at'), 0)} msg/s offered{bound}; "
                    f"stopped: {sat[f'{name}_stopped']}"
                )
    runs = [r for name in systems for r in result[name] if r.get("client_bound")]
    if runs:
        out.append(
            f"- {len(runs)} row(s) client-bound (busiest client process above "
            f"{result['meta'].get('client_bound_percent', 90):g} % CPU): the client, not the "
            "server, may have limited them; try --client-procs"
        )
    idle = result.get("idle_memory")
    if idle and not idle.get("skipped"):
        figures = ", ".join(
            f"{name} {_fmt(idle[name]['rss_per_client_kib'])} KiB/client"
            for name in systems
            if name in idle
        )
        out.append(f"- idle memory, {idle['clients']} subscribed clients: {figures}")
    elif idle:
        out.append(f"- idle memory: skipped ({idle['skipped']})")
    r = result["ratios"]
    for peer, vs in r.get("vs", {}).items():
        out.append(
            f"- rtstream / {peer}: saturation_throughput "
            f"{_BOUND_SIGN[vs['saturation_throughput_bound']]}"
            f"{_fmt(vs['saturation_throughput'], 3)} ({vs['saturation_throughput_bound']}), "
            f"p99_10k_100_clients {_fmt(vs['p99_10k_100_clients'], 3)}, "
            f"server_us_per_msg_10k_100_clients {_fmt(vs['server_us_per_msg_10k_100_clients'], 3)}"
        )
        if vs.get("p99_by_run"):
            out.append(
                f"  - p99 ratio by run vs {peer}: "
                + ", ".join(f"{k}: {_fmt(v, 2)}" for k, v in vs["p99_by_run"].items())
            )
    if r.get("best_peer"):
        out.append(
            "- rtstream / best peer: "
            + ", ".join(f"{k} {_fmt(v, 3)}" for k, v in r["best_peer"].items())
        )
    return "\n".join(out)


_BOUND_SIGN = {"exact": "", "lower bound": "≥ ", "upper bound": "≤ ", "unknown": "? ", "-": ""}


def _bound_kind(sat: dict[str, Any], peer: str = "baseline") -> str:
    """How far a saturation ratio can be trusted: a system that delivered even the sweep's
    top rate was not saturated, so its maximum only bounds its capacity from below."""
    if not sat or sat.get("rtstream") is None or sat.get(peer) is None:
        return "-"
    rt, other = sat.get("rtstream_saturated"), sat.get(f"{peer}_saturated")
    if rt and other:
        return "exact"
    if other:
        return "lower bound"
    if rt:
        return "upper bound"
    return "unknown"


def _bound(sat: dict[str, Any], name: str) -> str:
    """'≥ ' when the system delivered even the sweep's top rate (not saturated)."""
    return "≥ " if sat.get(name) is not None and not sat.get(f"{name}_saturated") else ""


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
