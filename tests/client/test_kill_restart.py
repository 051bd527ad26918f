"""A real server killed with SIGKILL and restarted on the same port and database, again and
again, with a client subscribed to alert topics fed by crossing ticks (issue 16).

Nothing may be lost or duplicated: what the application saw on each topic equals the
persisted alert history, once each, in order, and the first alert fired after each restart
arrives. Alerts are fired at different points: before a kill (some of them reach the client
live, some only through the next epoch's gap fill) and right after the restart (before or
after the client is back). How fast the client rejoined is printed, not asserted: the
benchmark ``python -m jupyter_rtstream.bench.rejoin`` measures it.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import pytest

import jupyter_rtstream
from jupyter_rtstream.client import ConnectionState
from jupyter_rtstream.testing import ServerProcess

from ._helpers import (
    LIVE_CONFIG,
    Recorder,
    add_crossing_rule,
    alert_history,
    post_ticks,
    run,
    wait_until,
)

RESTARTS = 10
SYMBOL = "KILLX"


def test_kill_9_restarts_lose_and_duplicate_no_alert(capsys: pytest.CaptureFixture[str]) -> None:
    server = ServerProcess(config=LIVE_CONFIG)
    server.start()
    rng = random.Random(16)
    rejoin: list[float] = []

    async def scenario() -> None:
        await add_crossing_rule(server, SYMBOL)
        stream = jupyter_rtstream.Stream(server.url, server.token, rng=random.Random(5))
        rec = Recorder(stream)
        await stream.__aenter__()
        await stream.subscribe("alerts", SYMBOL)
        await stream.subscribe("alerts", "*")
        before = set(await alert_history(server, SYMBOL))

        def seen(topic: str) -> list[int]:
            return [i for i in rec.alert_ids[topic] if i not in before]

        async def all_delivered(what: str) -> list[int]:
            expected = [i for i in await alert_history(server, SYMBOL) if i not in before]
            await wait_until(
                lambda: seen(f"alerts:{SYMBOL}") == expected and seen("alerts:*") == expected,
                timeout=30,
                what=what,
            )
            return expected

        await post_ticks(server, SYMBOL, [101.0])  # a new rule fires on its first crossing
        assert await all_delivered("the first alert")
        for cycle in range(RESTARTS):
            if cycle % 2:  # fire just before the kill: delivered live, or by the next fill
                await post_ticks(server, SYMBOL, [99.0, 101.0])
            else:
                await asyncio.sleep(rng.uniform(0.0, 0.5))
            reconnects = stream.stats.reconnects
            last_before_kill = max(await alert_history(server, SYMBOL))
            server.kill()
            await wait_until(lambda: stream.state is ConnectionState.RECONNECTING, what="drop")
            await asyncio.to_thread(server.start)
            ready = time.monotonic()
            await post_ticks(server, SYMBOL, [99.0, 101.0])  # the first alert of this epoch
            fired = await all_delivered(f"the alerts of restart {cycle + 1}")
            assert fired[-1] > last_before_kill  # this epoch's first alert fired and arrived
            # At least the one reconnect; a loaded machine may stall a restarting server past
            # the dead-connection threshold once more.
            assert stream.stats.reconnects >= reconnects + 1
            back = rec.reconnected_at(ready)
            rejoin.append(back - ready if back is not None else 0.0)
        await asyncio.sleep(0.3)  # nothing late, nothing doubled
        expected = await all_delivered("everything")
        assert len(expected) >= 1 + RESTARTS + RESTARTS // 2
        for topic in (f"alerts:{SYMBOL}", "alerts:*"):
            ids = seen(topic)
            assert ids == expected and len(set(ids)) == len(ids), topic
        assert stream.stats.gaps >= 2 * RESTARTS  # every restart is an epoch change
        await stream.close()
        with capsys.disabled():
            print(
                f"\n[kill -9 x{RESTARTS}] alerts fired {len(expected)}, delivered once each "
                f"on 2 topics, lost 0, duplicated 0, filled from history "
                f"{stream.stats.alerts_filled}; ready-to-connected p50 "
                f"{statistics.median(rejoin):.2f}s max {max(rejoin):.2f}s"
            )

    try:
        run(scenario(), timeout=180)
    finally:
        server.close()
