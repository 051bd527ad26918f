"""Against a real ``jupyter server`` (and a real TCP proxy for cuts and half-open stalls)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from functools import partial
from typing import Any

import pytest

import jupyter_rtstream
from jupyter_rtstream.client import (
    AuthenticationError,
    ConnectionState,
    NotConnectedError,
    RequestError,
    StreamClosed,
)
from jupyter_rtstream.core.messages import Ack, ConnectionStatus, MarketData
from jupyter_rtstream.testing import ServerProcess

from ._helpers import (
    Recorder,
    add_crossing_rule,
    alert_history,
    post_ticks,
    run,
    spread,
    wait_until,
)
from ._proxy import TcpProxy


def test_connect_subscribe_iterate_ping_close(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await jupyter_rtstream.connect(live_server.url, live_server.token)
        assert stream.state is ConnectionState.CONNECTED
        assert isinstance(stream.state, str) and str(stream.state) == "connected"
        assert stream.epoch and stream.client_id and stream.heartbeat_interval == 1.0
        per_topic: list[MarketData] = []
        remove = stream.on("market_data", per_topic.append, topic="market_data:MSFT")
        ack = await stream.subscribe("market_data", "aapl")
        assert isinstance(ack, Ack) and ack.data.topic == "market_data:AAPL"
        await stream.subscribe("market_data", "MSFT")
        assert stream.subscriptions == ["market_data:AAPL", "market_data:MSFT"]
        rtt = await stream.ping()
        assert 0 < rtt < 5
        seen: list[MarketData] = []
        async for message in stream:
            assert isinstance(message, MarketData)
            seen.append(message)
            if len(seen) >= 8:
                break
        assert {m.topic for m in seen} == {"market_data:AAPL", "market_data:MSFT"}
        for topic in ("market_data:AAPL", "market_data:MSFT"):
            seqs = [m.seq for m in seen if m.topic == topic]
            assert seqs == sorted(seqs)
        assert per_topic and all(m.topic == "market_data:MSFT" for m in per_topic)
        remove()
        count = len(per_topic)
        unack = await stream.unsubscribe("market_data", "MSFT")
        assert unack is not None and unack.data.subscriptions == ["market_data:AAPL"]
        await asyncio.sleep(0.3)
        assert len(per_topic) == count
        with pytest.raises(RequestError) as err:
            await stream.subscribe("market_data", "NOPE")
        assert err.value.code == "UNKNOWN_INSTRUMENT"
        assert stream.subscriptions == ["market_data:AAPL"]
        with pytest.raises(ValueError):
            stream.on("no_such_event", print)
        await stream.close()
        assert stream.closed and stream.state.value == "disconnected"
        async for _ in stream:  # iteration ends after close (after draining the queue)
            pass
        with pytest.raises(StreamClosed):
            await stream.subscribe("market_data", "AAPL")
        assert stream.stats.invalid_frames == 0

    run(scenario())


def test_control_messages_can_be_iterated_too(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        async with jupyter_rtstream.Stream(
            live_server.url, live_server.token, control_messages=True
        ) as stream:
            first = await stream.__anext__()
            assert isinstance(first, ConnectionStatus)

    run(scenario())


def test_403_is_final(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(AuthenticationError) as err:
            await jupyter_rtstream.connect(live_server.url, "wrong-token")
        assert err.value.status == 403
        assert "403" in str(err.value) and "wrong-token" not in str(err.value)
        assert time.monotonic() - started < 5  # no retries
        stream = jupyter_rtstream.Stream(live_server.url, "wrong-token").start()
        await wait_until(lambda: stream.state is ConnectionState.DISCONNECTED)
        attempts = stream.stats.connection_attempts
        await asyncio.sleep(1.0)
        assert stream.stats.connection_attempts == attempts == 1
        assert isinstance(stream.last_error, AuthenticationError)
        with pytest.raises(AuthenticationError):
            await stream.__anext__()

    run(scenario())


def test_wrong_base_url_fails_fast_with_a_hint(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        with pytest.raises(StreamClosed) as err:
            await jupyter_rtstream.connect(live_server.url + "nope/", live_server.token)
        assert "HTTP 404" in str(err.value) and "extension enabled" in str(err.value)

    run(scenario())


def reconnected_times(stream: jupyter_rtstream.Stream, times: int) -> bool:
    return stream.stats.reconnects == times


async def _subscribed_through_proxy(
    server: ServerProcess, proxy: TcpProxy, seed: int, **options: Any
) -> tuple[jupyter_rtstream.Stream, Recorder]:
    stream = jupyter_rtstream.Stream(proxy.url(), server.token, rng=random.Random(seed), **options)
    recorder = Recorder(stream)
    await stream.__aenter__()
    await stream.subscribe("market_data", "AAPL")
    await stream.subscribe("market_data", "MSFT")
    return stream, recorder


def test_cut_reconnect_resume_without_loss_or_duplicates(
    live_server: ServerProcess, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        proxy = await TcpProxy(live_server.port).start()
        stream, rec = await _subscribed_through_proxy(live_server, proxy, seed=3)
        reconnect_times: list[float] = []
        replayed: list[int] = []
        outage = [0.0, 0.0, 1.5]  # the last cut also keeps the server unreachable 1.5 s
        for i, down in enumerate(outage):
            await asyncio.sleep(1.0)
            before = {t: len(s) for t, s in rec.seqs.items()}
            cut_at = time.monotonic()
            proxy.refusing = down > 0
            assert proxy.cut() == 1
            late_subscribe = None
            if down:
                await wait_until(lambda: stream.state is ConnectionState.RECONNECTING)
                with pytest.raises(NotConnectedError):
                    await stream.ping()
                # Subscribing while reconnecting waits for the renewed connection's ack.
                late_subscribe = asyncio.ensure_future(stream.subscribe("market_data", "GOOG"))
                await asyncio.sleep(down)
                assert not late_subscribe.done()
                proxy.restore()
            await wait_until(partial(reconnected_times, stream, i + 1), what="reconnect")
            if late_subscribe is not None:
                assert (await late_subscribe).data.topic == "market_data:GOOG"
            assert stream.attempts == 0  # reset by the connection_status
            reconnected = rec.reconnected_at(cut_at)
            assert reconnected is not None
            reconnect_times.append(reconnected - cut_at)
            replayed.append(rec.burst("market_data:AAPL", reconnected))
            await wait_until(
                lambda: all(len(rec.seqs[t]) > n for t, n in before.items()),  # noqa: B023
                what="every topic flowing again",
            )
        await stream.close()
        await proxy.close()
        for topic in ("market_data:AAPL", "market_data:MSFT", "market_data:GOOG"):
            lost, dup, _ = rec.continuity(topic)
            assert (lost, dup) == (0, 0), topic
        for topic in ("market_data:AAPL", "market_data:MSFT"):
            assert len(rec.seqs[topic]) > 30
        assert stream.stats.missed == 0 and stream.stats.gaps == 0
        assert not rec.gaps
        # The 1.5 s outage was bridged by replay: the missed ticks came back in one burst.
        assert replayed[-1] >= 10
        with capsys.disabled():
            print(
                f"\n[cut/resume] reconnect times after cut: "
                f"{', '.join(f'{t:.3f}s' for t in reconnect_times)}; AAPL messages replayed "
                f"in a burst on reconnect: {replayed}; "
                f"delivered {stream.stats.delivered}, lost 0, duplicated 0, "
                f"replayed duplicates dropped by the client {stream.stats.duplicates}"
            )

    run(scenario())
    assert live_server.token not in caplog.text


def test_alerts_survive_cuts_without_loss_or_duplicates(
    live_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    """Alerts fired (by ticks we post) while the client is cut off are replayed on resume;
    what the application saw equals the persisted alert history, once each, in order."""

    async def scenario() -> None:
        await add_crossing_rule(live_server, "CUTX")
        proxy = await TcpProxy(live_server.port).start()
        stream = jupyter_rtstream.Stream(proxy.url(), live_server.token, rng=random.Random(8))
        rec = Recorder(stream)
        topic_seqs: list[int] = []
        stream.on("alert", lambda m: topic_seqs.append(m.seq), topic="alerts:CUTX")
        await stream.__aenter__()
        await stream.subscribe("alerts", "CUTX")
        await stream.subscribe("alerts", "*")
        before = set(await alert_history(live_server, "CUTX"))

        async def fire(n: int) -> None:
            await post_ticks(live_server, "CUTX", [101.0, 99.0] * n)

        await fire(3)
        for i, outage in enumerate((0.0, 1.0)):
            proxy.refusing = outage > 0
            assert proxy.cut() == 1
            await fire(4)  # fired while the client is cut off (or reconnecting)
            await asyncio.sleep(outage)
            proxy.restore()
            await fire(2)
            await wait_until(partial(reconnected_times, stream, i + 1), what="reconnect")
        expected = [i for i in await alert_history(live_server, "CUTX") if i not in before]
        assert len(expected) >= 10  # one per up-crossing once the rule is armed
        await wait_until(
            lambda: len(rec.alert_ids["alerts:CUTX"]) >= len(expected), what="all alerts"
        )
        await asyncio.sleep(0.3)
        await stream.close()
        await proxy.close()
        assert rec.alert_ids["alerts:CUTX"] == expected
        on_all = [i for i in rec.alert_ids["alerts:*"] if i in set(expected)]
        assert on_all == expected
        assert topic_seqs == list(range(topic_seqs[0], topic_seqs[0] + len(topic_seqs)))
        assert not rec.gaps
        with capsys.disabled():
            print(
                f"\n[alerts across 2 cuts] fired {len(expected)}, delivered "
                f"{len(rec.alert_ids['alerts:CUTX'])} on alerts:CUTX, lost 0, duplicated 0"
            )

    run(scenario())


def test_stall_is_detected_by_missed_heartbeats(
    live_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        proxy = await TcpProxy(live_server.port).start()
        stream, rec = await _subscribed_through_proxy(live_server, proxy, seed=5)
        await asyncio.sleep(1.0)
        stalled_at = time.monotonic()
        assert proxy.stall() == 1  # half-open: the socket stays up, nothing arrives
        await wait_until(lambda: stream.state is not ConnectionState.CONNECTED, timeout=20)
        detected = time.monotonic() - stalled_at
        await wait_until(lambda: stream.stats.reconnects == 1, timeout=20, what="reconnect")
        reconnected = time.monotonic() - stalled_at
        assert "dead connection" in str(stream.last_error)
        await asyncio.sleep(0.5)
        proxy.restore()
        await stream.close()
        await proxy.close()
        # 2 missed 1 s heartbeats; the last frame came at most ~0.1 s before the stall.
        assert 1.0 < detected < 15.0
        for topic in ("market_data:AAPL", "market_data:MSFT"):
            assert rec.continuity(topic)[:2] == (0, 0)
        with capsys.disabled():
            print(
                f"\n[stall] half-open detected after {detected:.2f}s "
                f"(heartbeat 1 s x 2), reconnected and resumed after {reconnected:.2f}s; "
                f"lost 0, duplicated 0"
            )

    run(scenario())


def test_many_clients_cut_at_once_reconnect_spread_by_jitter(
    live_server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    n = 100

    async def scenario() -> None:
        proxy = await TcpProxy(live_server.port).start()
        streams = []
        recorders = []
        for seed in range(n):
            stream = jupyter_rtstream.Stream(
                proxy.url(), live_server.token, rng=random.Random(seed)
            )
            recorders.append(Recorder(stream))
            streams.append(stream.start())
        await asyncio.gather(*(s.wait_connected(30) for s in streams))
        await asyncio.gather(*(s.subscribe("market_data", "AAPL") for s in streams))
        await asyncio.sleep(1.0)
        cut_at = time.monotonic()
        assert proxy.cut() == n
        await wait_until(
            lambda: all(s.stats.reconnects == 1 for s in streams), timeout=60, what="all back"
        )
        await asyncio.sleep(0.5)
        # Backoff delays drawn (attempt 0: uniform(0, 0.5)) and actual reconnect times.
        delays = []
        for rec in recorders:
            retry = next(c for _, c in rec.states if c.state is ConnectionState.RECONNECTING)
            assert retry.next_retry_at is not None and retry.attempts == 1
        for rec in recorders:
            back = rec.reconnected_at(cut_at)
            assert back is not None
            delays.append(back - cut_at)
        drawn = [random.Random(seed).uniform(0, 0.5) for seed in range(n)]
        await asyncio.gather(*(s.close() for s in streams))
        await proxy.close()
        lost = dup = 0
        for rec in recorders:
            topic_lost, topic_dup, _ = rec.continuity("market_data:AAPL")
            lost += topic_lost
            dup += topic_dup
        assert (lost, dup) == (0, 0)
        # Spread: the reconnects cover the jitter window instead of arriving together.
        assert max(delays) - min(delays) > 0.2
        assert max(drawn) <= 0.5
        with capsys.disabled():
            print(
                f"\n[{n} clients cut at once] jitter drawn: {spread(drawn)}; "
                f"actual cut-to-connected: {spread(delays)}; lost {lost}, duplicated {dup}"
            )

    run(scenario(), timeout=120)
