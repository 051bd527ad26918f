"""Shared helpers of the client tests (run coroutines, wait, record what a stream saw)."""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Coroutine
from typing import Any

# One Recorder for the client tests and the fault suite (re-exported for the tests).
from jupyter_rtstream.chaos.recorder import Recorder as Recorder

from .._wait import wait_until

__all__ = ["LIVE_CONFIG", "Recorder", "run", "wait_until"]

LIVE_CONFIG: dict[str, dict[str, Any]] = {
    "RtstreamApp": {
        "seed": 4242,
        "tick_rate": 10.0,
        "heartbeat_interval": 1.0,
        # test_many_clients_cut_at_once: 100 clients share the one server token (one user).
        "max_connections_per_user": 1_000,
    }
}


def run(coro: Coroutine[Any, Any, Any], timeout: float = 90.0) -> Any:
    """Run a test coroutine on a fresh event loop, with a hard timeout against hangs."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


def spread(values: list[float]) -> str:
    return (
        f"min {min(values):.3f}s / median {statistics.median(values):.3f}s / "
        f"max {max(values):.3f}s (n={len(values)})"
    )


async def post_ticks(server: Any, symbol: str, prices: list[float]) -> None:
    """``POST rtstream/api/ticks`` (off the loop: ServerProcess uses blocking urllib)."""
    body = {"ticks": [{"symbol": symbol, "price": p, "volume": 100} for p in prices]}
    status, answer = await asyncio.to_thread(
        server.request_json, "POST", "rtstream/api/ticks", body
    )
    assert status == 200, answer


async def add_crossing_rule(server: Any, symbol: str, level: float = 100.0) -> int:
    """Register ``symbol`` and a ``price_above level`` rule: each up-crossing fires one alert."""
    await post_ticks(server, symbol, [level - 1])
    rule = {
        "rule_name": f"{symbol} above {level:g}",
        "symbol": symbol,
        "condition": "price_above",
        "target_value": level,
        "severity": "high",
        "cooldown_seconds": 0.0,  # every crossing fires (the REST default is 60 s)
    }
    status, answer = await asyncio.to_thread(
        server.request_json, "POST", "rtstream/api/alerts/rules", rule
    )
    assert status == 201, answer
    return int(answer["rule_id"])


async def alert_history(server: Any, symbol: str) -> list[int]:
    """alert_ids of ``symbol`` in the persisted history, oldest first."""
    body = await asyncio.to_thread(server.get_json, "rtstream/api/alerts?since=0")
    return [a["alert_id"] for a in body["alerts"] if a["symbol"] == symbol]
