"""Pieces every scenario shares: a server config, REST calls off the loop, a restart that
knows when the port listens again, and what ``/proc`` says about the server process."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ..testing import ServerProcess


#: A real server tuned for fault runs: 5 s heartbeats (the frozen-peer scenario sets 1 s, so
#: "two intervals" is short; elsewhere a 1 s interval would let a loaded machine's stalls
#: close healthy bystanders), every client of the run under the one token, a small seeded
#: history (fast restarts).
def server_config(**overrides: Any) -> dict[str, dict[str, Any]]:
    return {
        "RtstreamApp": {
            "seed": 1212,
            "tick_rate": 10.0,
            "heartbeat_interval": 5.0,
            "history_ticks": 200,
            "max_connections_per_user": 10_000,
            **overrides,
        }
    }


async def rest(server: ServerProcess, method: str, path: str, body: Any = None) -> Any:
    """A JSON request (blocking urllib, so off the loop); raises on an unexpected status."""
    status, answer = await asyncio.to_thread(server.request_json, method, path, body)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: HTTP {status} {answer}")
    return answer


async def post_ticks(server: ServerProcess, symbol: str, prices: list[float]) -> None:
    body = {"ticks": [{"symbol": symbol, "price": p, "volume": 100} for p in prices]}
    await rest(server, "POST", "rtstream/api/ticks", body)


async def add_crossing_rule(server: ServerProcess, symbol: str, level: float = 100.0) -> int:
    """Register ``symbol`` and a ``price_above level`` rule: each up-crossing fires once."""
    await post_ticks(server, symbol, [level - 1])
    rule = {
        "rule_name": f"{symbol} above {level:g}",
        "symbol": symbol,
        "condition": "price_above",
        "target_value": level,
        "severity": "high",
        "cooldown_seconds": 0.0,
    }
    answer = await rest(server, "POST", "rtstream/api/alerts/rules", rule)
    return int(answer["rule_id"])


async def alert_history(server: ServerProcess, symbol: str) -> list[int]:
    """alert_ids of ``symbol`` persisted in SQLite (``GET rtstream/api/alerts``), oldest first."""
    ids: list[int] = []
    since = 0
    while True:
        body = await rest(server, "GET", f"rtstream/api/alerts?since={since}&limit=1000")
        alerts = body["alerts"]
        if not alerts:
            return ids
        ids.extend(a["alert_id"] for a in alerts if a["symbol"] == symbol)
        since = alerts[-1]["alert_id"]


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (``/proc/<pid>/status`` VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


#: What an unhandled exception looks like in a jupyter server log.
UNHANDLED_MARKERS = ("Traceback (most recent call last)", "Uncaught exception", "Task exception")


def unhandled_exceptions(server: ServerProcess, start: int = 0) -> list[str]:
    """Lines of the server log (from byte ``start``) that report an unhandled exception."""
    try:
        text = server.log_path.read_bytes()[start:].decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if any(m in line for m in UNHANDLED_MARKERS)]


def log_size(server: ServerProcess) -> int:
    try:
        return server.log_path.stat().st_size
    except OSError:
        return 0


async def wait_for(predicate: Callable[[], object], timeout: float, interval: float = 0.02) -> bool:
    """Poll ``predicate`` up to ``timeout`` s; True when it held (never raises)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def gather_bounded(coros: list[Awaitable[Any]], limit: int = 50) -> list[Any]:
    """Run ``coros`` at most ``limit`` at a time (bounded handshakes on a 2-core machine)."""
    out: list[Any] = []
    for start in range(0, len(coros), limit):
        out.extend(await asyncio.gather(*coros[start : start + limit]))
    return out
