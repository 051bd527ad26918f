"""Scenario 2, reconnect storm: ``clients`` streams of one process, all subscribed, and the
server restarted gracefully (SIGTERM: every client gets close 1001 with a ``retry_after``).

Each stream's reconnect (its ``connected`` state) and resubscription (its subscribe
``ack``) after the restarted server listens are recorded; reconnects are counted in 100 ms
buckets. Goals (timed: the shape of a crowd depends on the machine): no bucket holds more
than 10 % of the clients, and every client is resubscribed within the backoff cap + 5 s.
Invariants: every client got the 1001 close with a ``retry_after``, and every client is
resubscribed in the end.

The control is the same run with jitter disabled on both sides: the server sends every
client the same ``retry_after`` (``RtstreamApp.shutdown_jitter = False``) and the clients'
random source always answers the top of its range (no jitter in their delays). It shows the
herd that the jitter prevents.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from ..client import ConnectionState, Stream
from ..core.backoff import MAX_DELAY
from ..testing import ServerProcess, restart_timed
from ._common import gather_bounded, server_config, wait_for
from .result import Result, percentile


class NoJitter(random.Random):
    """A random source without randomness: ``uniform(a, b)`` is always ``b``."""

    def uniform(self, a: float, b: float) -> float:
        return b


class _Watch:
    def __init__(self, stream: Stream) -> None:
        self.connected: list[float] = []
        self.acked: list[float] = []
        stream.on("state", self._state)
        stream.on("ack", self._ack)

    def _state(self, change: Any) -> None:
        if change.state is ConnectionState.CONNECTED:
            self.connected.append(time.monotonic())

    def _ack(self, message: Any) -> None:
        if message.data.action == "subscribe":
            self.acked.append(time.monotonic())


async def _storm(clients: int, jitter: bool) -> dict[str, Any]:
    config = server_config(heartbeat_interval=2.0, tick_rate=1.0, shutdown_jitter=jitter)
    server = ServerProcess(config=config)
    await asyncio.to_thread(server.start)
    rng: Any = (lambda i: random.Random(i)) if jitter else (lambda i: NoJitter(i))
    streams = [Stream(server.url, server.token, rng=rng(i)) for i in range(clients)]
    watches = [_Watch(s) for s in streams]
    try:
        for s in streams:
            s.start()
        await gather_bounded([s.wait_connected(120) for s in streams], 50)
        await gather_bounded([s.subscribe("market_data", "AAPL", timeout=60) for s in streams])
        for w in watches:
            w.connected.clear()
            w.acked.clear()
        stopped = time.monotonic()
        await asyncio.to_thread(server.stop)
        listen = await restart_timed(server)
        bound = MAX_DELAY + 5.0
        await wait_for(lambda: all(w.acked for w in watches), bound + 60)
        back = [w.connected[0] - listen for w in watches if w.connected]
        acked = [w.acked[0] - listen for w in watches if w.acked]
        closes = [s.last_close for s in streams]
        told = sum(
            1 for c in closes if c is not None and c.code == 1001 and c.retry_after is not None
        )
    finally:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
        await asyncio.to_thread(server.close)
    buckets = Counter(int(max(0.0, t) // 0.1) for t in back)
    top, top_count = max(buckets.items(), key=lambda kv: kv[1]) if buckets else (0, 0)
    return {
        "clients": clients,
        "jitter": jitter,
        "restart_s": round(listen - stopped, 2),
        "reconnected": len(back),
        "resubscribed": len(acked),
        "told_1001_retry_after": told,
        "first_s": round(min(back), 3) if back else None,
        "last_resubscribed_s": round(max(acked), 3) if acked else None,
        "p50_s": round(percentile(back, 0.5), 3),
        "max_bucket_share": top_count / clients,
        "max_bucket": f"{top / 10:.1f}-{(top + 1) / 10:.1f} s: {top_count}",
        "buckets_per_s": dict(sorted(Counter(int(max(0.0, t)) for t in back).items())),
        "bound_s": bound,
    }


def _result(r: dict[str, Any], control: bool) -> Result:
    n = r["clients"]
    result = Result(
        scenario="2. reconnect storm" + (" (control: no jitter)" if control else ""),
        load=f"{n} Python clients in one process, each subscribed to market_data:AAPL",
        faults="graceful restart (SIGTERM: close 1001 with retry_after), same port and db"
        + ("; server retry_after fixed at 1 s, client jitter off" if control else ""),
    )
    result.details = r
    last = r["last_resubscribed_s"]
    result.figure = (
        f"restart took {r['restart_s']} s; {r['reconnected']}/{n} reconnected from "
        f"{r['first_s']} s after listen (p50 {r['p50_s']} s), largest 100 ms bucket "
        f"{r['max_bucket']} ({r['max_bucket_share']:.1%}); all resubscribed by {last} s"
    )
    if control:
        result.goal(
            "control shows the herd (largest bucket > 10 %)",
            r["max_bucket_share"] > 0.10,
            f"{r['max_bucket_share']:.1%}",
            timed=True,
        )
        return result
    result.goal(
        "every client told 1001 with retry_after",
        r["told_1001_retry_after"] == n,
        f"{r['told_1001_retry_after']}/{n}",
    )
    result.goal("every client resubscribed", r["resubscribed"] == n, f"{r['resubscribed']}/{n}")
    result.goal(
        "no 100 ms bucket > 10 % of clients",
        r["max_bucket_share"] <= 0.10,
        f"{r['max_bucket_share']:.1%}",
        timed=True,
    )
    result.goal(
        f"all resubscribed within cap + 5 s ({r['bound_s']:g} s)",
        last is not None and last <= r["bound_s"] and r["resubscribed"] == n,
        f"last {last} s",
        timed=True,
    )
    return result


async def run(clients: int = 500, control: bool = True) -> list[Result]:
    results = [_result(await _storm(clients, jitter=True), control=False)]
    if control:
        results.append(_result(await _storm(clients, jitter=False), control=True))
    return results
