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


def ratios(result: dict[str, Any]) -> dict[str, Any]:
    """rtstream / baseline: saturation throughput, p99 at 10k msg/s over 100 clients, and
    p99 for every (clients, rate) both systems ran."""
    rt, base = result["rtstream"], result["baseline"]
    sat = result.get("saturation") or {}
    at_10k_100 = (find(rt, 100, 10_000.0), find(base, 100, 10_000.0))
    p99_by_run: dict[str, float | None] = {}
    for run in rt:
        other = find(base, run["clients"], run["target_rate"])
        if other is not None:
            key = f"{run['clients']}@{run['target_rate']:g}"
            p99_by_run[key] = _ratio(run["p99_ms"], other["p99_ms"])
    return {
        "saturation_throughput": _ratio(sat.get("rtstream"), sat.get("baseline")),
        "saturation_throughput_bound": _bound_kind(sat),
        "p99_10k_100_clients": (
            _ratio(at_10k_100[0]["p99_ms"], at_10k_100[1]["p99_ms"])
            if at_10k_100[0] is not None and at_10k_100[1] is not None
            else None
        ),
        "p99_by_run": p99_by_run,
        "server_us_per_msg_10k_100_clients": (
            _ratio(at_10k_100[0]["server_us_per_msg"], at_10k_100[1]["server_us_per_msg"])
            if at_10k_100[0] is not None and at_10k_100[1] is not None
            else None
        ),
    }


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
)


def table(result: dict[str, Any]) -> str:
    """The runs, rtstream and baseline side by side per (clients, rate), as Markdown."""
    rows: list[list[str]] = []
    keys = sorted(
        {(r["phase"], r["clients"], r["target_rate"]) for r in result["rtstream"]}
        | {(r["phase"], r["clients"], r["target_rate"]) for r in result["baseline"]},
        key=lambda k: (k[0] != "fixed", k[1], k[2]),
    )
    for phase, clients, rate in keys:
        for system in ("rtstream", "baseline"):
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
            run = {**run, "system": system if phase == "fixed" else f"{system} (sweep)"}
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
    sat = result.get("saturation")
    if sat:
        rates = ", ".join(f"{r:g}" for r in sat["rates"])
        out.append(
            f"- saturation at {sat['clients']} clients (sweep {rates} msg/s): "
            f"rtstream {_bound(sat, 'rtstream')}{_fmt(sat.get('rtstream'), 0)} msg/s, "
            f"baseline {_bound(sat, 'baseline')}{_fmt(sat.get('baseline'), 0)} msg/s"
        )
    idle = result.get("idle_memory")
    if idle and not idle.get("skipped"):
        per_client = {
            name: _fmt(idle[name]["rss_per_client_kib"]) if name in idle else "-"
            for name in ("rtstream", "baseline")
        }
        out.append(
            f"- idle memory, {idle['clients']} subscribed clients: rtstream "
            f"{per_client['rtstream']} KiB/client, baseline {per_client['baseline']} KiB/client"
        )
    elif idle:
        out.append(f"- idle memory: skipped ({idle['skipped']})")
    r = result["ratios"]
    out.append(
        "- ratios (rtstream / baseline): "
        f"saturation_throughput {_BOUND_SIGN[r['saturation_throughput_bound']]}"
        f"{_fmt(r['saturation_throughput'], 3)} ({r['saturation_throughput_bound']}), "
        f"p99_10k_100_clients {_fmt(r['p99_10k_100_clients'], 3)}"
    )
    if r.get("p99_by_run"):
        out.append(
            "- p99 ratio by run: "
            + ", ".join(f"{k}: {_fmt(v, 2)}" for k, v in r["p99_by_run"].items())
        )
    return "\n".join(out)


_BOUND_SIGN = {"exact": "", "lower bound": "≥ ", "upper bound": "≤ ", "unknown": "? ", "-": ""}


def _bound_kind(sat: dict[str, Any]) -> str:
    """How far the saturation ratio can be trusted: a system that delivered even the sweep's
    top rate was not saturated, so its maximum only bounds its capacity from below."""
    if not sat or sat.get("rtstream") is None or sat.get("baseline") is None:
        return "-"
    rt, base = sat.get("rtstream_saturated"), sat.get("baseline_saturated")
    if rt and base:
        return "exact"
    if base:
        return "lower bound"
    if rt:
        return "upper bound"
    return "unknown"


def _bound(sat: dict[str, Any], name: str) -> str:
    """'≥ ' when the system delivered even the sweep's top rate (not saturated)."""
    return "≥ " if sat.get(name) is not None and not sat.get(f"{name}_saturated") else ""


def write_json(result: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
