"""Shared helpers of the client tests (run coroutines, wait, record what a stream saw)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import defaultdict
from collections.abc import Coroutine
from typing import Any

from jupyter_rtstream.client import ConnectionState, GapEvent, StateChange, Stream

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


class Recorder:
    """What the application saw: (epoch, seq) per topic, state changes, gap events."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.seqs: dict[str, list[tuple[str | None, int]]] = defaultdict(list)
        self.arrivals: dict[str, list[float]] = defaultdict(list)
        self.alert_ids: dict[str, list[int]] = defaultdict(list)
        self.states: list[tuple[float, StateChange]] = []
        self.gaps: list[GapEvent] = []
        stream.on("market_data", self._data)
        stream.on("alert", self._alert)
        stream.on("state", lambda change: self.states.append((time.monotonic(), change)))
        stream.on("gap", self.gaps.append)

    def _data(self, message: Any) -> None:
        self.seqs[message.topic].append((self.stream.epoch, message.seq))
        self.arrivals[message.topic].append(time.monotonic())

    def _alert(self, message: Any) -> None:
        self.alert_ids[message.topic].append(message.data.alert_id)

    def continuity(self, topic: str) -> tuple[int, int]:
        """(lost, duplicated) messages of ``topic`` within each epoch, in delivery order."""
        lost = dup = 0
        previous: tuple[str | None, int] | None = None
        for epoch, seq in self.seqs[topic]:
            if previous is not None and previous[0] == epoch:
                step = seq - previous[1]
                if step <= 0:
                    dup += 1
                else:
                    lost += step - 1
            previous = (epoch, seq)
        return lost, dup

    def burst(self, topic: str, start: float, window: float = 0.05) -> int:
        """Messages of ``topic`` delivered within ``window`` s of ``start`` (a replay burst)."""
        return sum(1 for t in self.arrivals[topic] if start <= t <= start + window)

    def reconnected_at(self, after: float) -> float | None:
        """Monotonic time of the first ``connected`` state after ``after``."""
        for when, change in self.states:
            if when > after and change.state is ConnectionState.CONNECTED:
                return when
        return None


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
