"""Cases the real server cannot stage, against a scripted server speaking the real protocol:
invalid frames, and the alert gap filled from ``GET rtstream/api/alerts?since=``."""

from __future__ import annotations

import asyncio
import random

import jupyter_rtstream
from jupyter_rtstream.client import ConnectionState
from jupyter_rtstream.core.codec import encode
from jupyter_rtstream.core.messages import MarketData, MarketDataPayload, Subscribe, utc_now

from ._fake_server import FakeServer, alert_frame, alert_payload
from ._helpers import Recorder, run, wait_until


def market_frame(seq: int) -> str:
    data = MarketDataPayload(
        instrument_id=1, symbol="AAPL", price=100.0, volume=1.0, timestamp=utc_now()
    )
    return encode(MarketData(topic="market_data:AAPL", seq=seq, data=data))


def test_invalid_frames_are_counted_and_never_crash() -> None:
    garbage: list[str | bytes] = [
        "not json at all",
        "[1, 2, 3]",
        '{"message_type": "bogus", "version": "1.0"}',
        '{"message_type": "market_data", "version": "1.0", "topic": "market_data:AAPL"}',
        '{"message_type": "ack", "version": "2.0", "data": {"action": "ping"}}',
        b"\x00\x01binary",
        '{"message_type": "market_data", "data": {"price": "NaN"}}',
    ]

    async def scenario() -> None:
        fake = FakeServer().start()

        def on_subscribe(sock, request: Subscribe) -> None:  # type: ignore[no-untyped-def]
            sock.ack(request, "market_data:AAPL", None)
            sock.send(market_frame(1))
            for frame in garbage:
                sock.send(frame)
            sock.send(market_frame(2))

        fake.on_subscribe = on_subscribe
        stream = await jupyter_rtstream.connect(fake.url, fake.token)
        rec = Recorder(stream)
        await stream.subscribe("market_data", "AAPL")
        await wait_until(lambda: len(rec.seqs["market_data:AAPL"]) == 2, what="valid frames")
        assert stream.stats.invalid_frames == len(garbage)
        assert stream.stats.last_invalid is not None
        assert stream.state is ConnectionState.CONNECTED
        assert stream.stats.reconnects == 0
        # The same connection still carries requests (the fake server acks subscribes).
        assert (await stream.subscribe("market_data", "AAPL")).data.topic == "market_data:AAPL"
        assert stream.stats.reconnects == 0
        await stream.close()
        await fake.stop()

    run(scenario())


def test_alert_gap_is_filled_from_the_history_without_loss_or_duplicates() -> None:
    async def scenario() -> None:
        fake = FakeServer(epoch="e1").start()
        fake.alert_history = [alert_payload(i) for i in (1, 2)]

        def first_life(sock, request: Subscribe) -> None:  # type: ignore[no-untyped-def]
            assert request.resume_from is None
            sock.ack(request, "alerts:*", None)
            sock.send(alert_frame("alerts:*", 1, fake.alert_history[0]))
            sock.send(alert_frame("alerts:*", 2, fake.alert_history[1]))

        fake.on_subscribe = first_life
        stream = await jupyter_rtstream.connect(
            fake.url, fake.token, rng=random.Random(2), backoff_base=0.05
        )
        rec = Recorder(stream)
        await stream.subscribe("alerts", "*")
        await wait_until(lambda: rec.alert_ids["alerts:*"] == [1, 2], what="first alerts")

        # The server "restarts": new epoch; alerts 3-5 fired while we were away (in the
        # persisted history); alert 5 and 6 also come live right after the resume's ack.
        def second_life(sock, request: Subscribe) -> None:  # type: ignore[no-untyped-def]
            assert (request.resume_from, request.epoch) == (2, "e1")
            sock.ack(request, "alerts:*", False)
            sock.send(alert_frame("alerts:*", 1, fake.alert_history[4]))
            sock.send(alert_frame("alerts:*", 2, alert_payload(6)))

        fake.epoch = "e2"
        fake.alert_history += [alert_payload(i) for i in (3, 4, 5)]
        fake.on_subscribe = second_life
        for sock in list(fake.connections):
            sock.close(1001, '{"reason":"SERVER_SHUTDOWN","retry_after":0.1}')
        await wait_until(lambda: len(rec.gaps) == 1, what="gap event")
        gap = rec.gaps[0]
        assert (gap.topic, gap.reason, gap.resume_from) == ("alerts:*", "epoch_changed", 2)
        assert (gap.previous_epoch, gap.epoch) == ("e1", "e2")
        # 3 and 4 come from the history only; 5 from whichever arrived first (live alerts
        # that arrive during the fill are held, then merged by alert_id).
        assert gap.filled in (2, 3) and gap.fill_error is None
        assert fake.alert_queries == ["/rtstream/api/alerts?since=2&limit=1000"]
        await asyncio.sleep(0.1)
        assert rec.alert_ids["alerts:*"] == [1, 2, 3, 4, 5, 6]
        assert stream.stats.alerts_filled == gap.filled
        await stream.close()
        await fake.stop()

    run(scenario())


def test_alert_gap_fill_failure_is_reported_and_live_alerts_still_flow() -> None:
    async def scenario() -> None:
        fake = FakeServer(epoch="e1").start()

        def ack(sock, request: Subscribe) -> None:  # type: ignore[no-untyped-def]
            resumed = request.resume_from is not None
            sock.ack(request, "alerts:AAPL", False if resumed else None)
            if resumed:
                sock.send(alert_frame("alerts:AAPL", 1, alert_payload(9)))

        fake.on_subscribe = ack
        stream = await jupyter_rtstream.connect(fake.url, fake.token, backoff_base=0.05)
        rec = Recorder(stream)
        await stream.subscribe("alerts", "AAPL")
        fake.epoch = "e2"
        fake.alerts_status = 500
        for sock in list(fake.connections):
            sock.close(1013, '{"reason":"SLOW_CONSUMER","retry_after":0.1}')
        await wait_until(lambda: len(rec.gaps) == 1, what="gap event")
        gap = rec.gaps[0]
        assert gap.filled is None and gap.fill_error is not None and "500" in gap.fill_error
        # No alert was seen and the ack gave no last_alert_id: the history is asked from the
        # start, of this topic's symbol only.
        assert fake.alert_queries == ["/rtstream/api/alerts?since=0&limit=1000&symbol=AAPL"]
        await wait_until(lambda: rec.alert_ids["alerts:AAPL"] == [9], what="live alert")
        assert stream.state is ConnectionState.CONNECTED
        await stream.close()
        await fake.stop()

    run(scenario())
