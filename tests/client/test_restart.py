"""A server killed and restarted on the same port: new epoch, gap events, the alert gap
filled from ``GET rtstream/api/alerts?since=``; a graceful stop's ``retry_after`` honoured;
a 403 after a restart is final."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import datetime, timezone

import pytest

import jupyter_rtstream
from jupyter_rtstream.client import AuthenticationError, ConnectionState, GapEvent
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
from ._proxy import TcpProxy


def test_kill_restart_stop_and_token_change(capsys: pytest.CaptureFixture[str]) -> None:
    server = ServerProcess(config=LIVE_CONFIG)
    server.start()
    replacement: ServerProcess | None = None
    report: list[str] = []

    async def scenario() -> None:
        nonlocal replacement
        proxy = await TcpProxy(server.port).start()
        await add_crossing_rule(server, "RSTX")
        stream = jupyter_rtstream.Stream(
            proxy.url(), server.token, rng=random.Random(11), backoff_cap=2.0
        )
        rec = Recorder(stream)
        await stream.__aenter__()
        await stream.subscribe("market_data", "AAPL")
        await stream.subscribe("alerts", "RSTX")
        await post_ticks(server, "RSTX", [101.0, 99.0] * 3)
        fired_before = await alert_history(server, "RSTX")
        assert fired_before
        await wait_until(lambda: rec.alert_ids["alerts:RSTX"] == fired_before, what="alerts")
        await asyncio.sleep(0.5)
        first_epoch = stream.epoch

        # 1. SIGKILL: no close frame; the socket just dies. Restart on the same port; alerts
        # fire on the new server before the client is back (the proxy keeps it out).
        proxy.refusing = True
        server.kill()
        await wait_until(lambda: stream.state is ConnectionState.RECONNECTING, what="drop")
        await asyncio.to_thread(server.start)
        await post_ticks(server, "RSTX", [99.0, 101.0, 99.0, 101.0, 99.0])
        fired_while_away = [i for i in await alert_history(server, "RSTX") if i not in fired_before]
        assert fired_while_away
        ready_at = time.monotonic()
        proxy.restore()
        await wait_until(lambda: stream.stats.reconnects == 1, timeout=30, what="rejoin")
        back = rec.reconnected_at(ready_at)
        assert back is not None
        report.append(f"rejoined the restarted server {back - ready_at:.2f}s after it was back")
        assert stream.epoch != first_epoch
        await wait_until(lambda: len(rec.gaps) == 2, what="gap events")
        by_topic = {g.topic: g for g in rec.gaps}
        market_gap = by_topic["market_data:AAPL"]
        assert market_gap.reason == "epoch_changed"
        assert (market_gap.previous_epoch, market_gap.epoch) == (first_epoch, stream.epoch)
        assert market_gap.resume_from is not None and market_gap.resume_from > 0
        alert_gap = by_topic["alerts:RSTX"]
        assert alert_gap.reason == "epoch_changed" and alert_gap.fill_error is None
        # The alerts fired while we were away came from GET rtstream/api/alerts?since=.
        assert alert_gap.filled == len(fired_while_away)
        assert rec.alert_ids["alerts:RSTX"] == fired_before + fired_while_away
        report.append(
            f"alert gap filled over REST: {alert_gap.filled} alerts; alerts delivered "
            f"{len(rec.alert_ids['alerts:RSTX'])} == history, lost 0, duplicated 0"
        )
        await post_ticks(server, "RSTX", [101.0, 99.0])  # live again after the fill
        history = await alert_history(server, "RSTX")
        await wait_until(lambda: rec.alert_ids["alerts:RSTX"] == history, what="live alert")

        # The new epoch's messages flow, in order, without duplicates.
        def new_epoch() -> list[int]:
            return [s for e, s in rec.seqs["market_data:AAPL"] if e == stream.epoch]

        await wait_until(lambda: len(new_epoch()) >= 3, what="the new epoch's messages")
        assert new_epoch() == sorted(set(new_epoch()))
        assert rec.continuity("market_data:AAPL")[1] == 0

        # 2. Graceful stop: close 1001 with a spread retry_after; the client waits that long.
        stopped_at = datetime.now(timezone.utc)
        await asyncio.to_thread(server.stop)
        await wait_until(lambda: stream.state is ConnectionState.RECONNECTING, what="1001")
        # last_close, not last_error: a retry during the shutdown may replace last_error.
        close = stream.last_close
        assert close is not None and (close.code, close.reason) == (1001, "SERVER_SHUTDOWN")
        assert close.retry_after is not None and close.retry_after >= 1.0
        first_retry = next(
            c
            for _, c in reversed(rec.states)
            if c.state is ConnectionState.RECONNECTING and c.attempts == 1
        )
        assert first_retry.next_retry_at is not None
        assert (first_retry.next_retry_at - stopped_at).total_seconds() >= 1.0  # retry_after>=1
        proxy.refusing = True
        await asyncio.to_thread(server.start)
        # POSTed symbols are known again once they tick (else renewing alerts:RSTX is refused).
        await post_ticks(server, "RSTX", [99.0])
        proxy.restore()
        await wait_until(lambda: stream.stats.reconnects == 2, timeout=30, what="rejoin")
        await wait_until(lambda: len(rec.gaps) == 4, what="second gap events")

        # 3. The server comes back with another token: 403 on reconnect is final.
        server.kill()
        replacement = ServerProcess(port=server.port, token="another-token", config=LIVE_CONFIG)
        await asyncio.to_thread(replacement.start)
        await wait_until(lambda: stream.state is ConnectionState.DISCONNECTED, timeout=30)
        assert isinstance(stream.last_error, AuthenticationError)
        attempts = stream.stats.connection_attempts
        await asyncio.sleep(1.5)
        assert stream.stats.connection_attempts == attempts
        with pytest.raises(AuthenticationError):
            await stream.subscribe("market_data", "MSFT")
        assert all(isinstance(g, GapEvent) for g in rec.gaps)
        report.append(
            f"delivered {stream.stats.delivered}, duplicates delivered 0, gaps {stream.stats.gaps}"
        )
        await proxy.close()

    try:
        run(scenario(), timeout=150)
    finally:
        server.close()
        if replacement is not None:
            replacement.close()
    with capsys.disabled():
        print("\n[restart] " + "; ".join(report))
