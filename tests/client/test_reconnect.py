"""ClientProtocol's reconnect decisions (issue 16) and its distrust of the wire (issue 11
item 5), plus the alert positions of issue 11 item 2: sans-I/O, fake clock, scripted rng."""

from __future__ import annotations

import json
import random
from typing import Any

from jupyter_rtstream.client import ClientProtocol, ConnectionState, StateChange, StreamOptions
from jupyter_rtstream.client.events import ConnectionDead, Delivered, FetchAlerts
from jupyter_rtstream.core.codec import encode
from jupyter_rtstream.core.messages import Ack, AckPayload

from ._fake_server import alert_frame, alert_payload
from .test_protocol import WALL, connect, md, of, sent, status


class Top(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


def proto_(**options: Any) -> ClientProtocol:
    return ClientProtocol(StreamOptions(rng=Top(), **options))


def ack(
    request: dict[str, Any],
    recovered: bool | None = None,
    seq: int | None = None,
    last_alert_id: int | None = None,
    store_id: str | None = None,
) -> str:
    data = AckPayload(
        request_id=request["request_id"],
        action="subscribe",
        topic=f"{request['subscription_type']}:{request['symbol']}",
        recovered=recovered,
        seq=seq,
        last_alert_id=last_alert_id,
        store_id=store_id,
    )
    return encode(Ack(data=data))


def subscribe(proto: ClientProtocol, topic: str, now: float, **ack_fields: Any) -> None:
    kind, symbol = topic.split(":")
    proto.subscribe(kind, symbol)
    (request,) = sent(proto)
    proto.receive_text(ack(request, **ack_fields), now)
    proto.events_received()


def resubscribe(proto: ClientProtocol, now: float, epoch: str, **ack_fields: Any) -> Any:
    """Reconnect to ``epoch`` and ack the one renewed subscribe; returns (request, events)."""
    connect(proto, now=now, epoch=epoch)
    (request,) = sent(proto)
    proto.receive_text(ack(request, **ack_fields), now)
    return request, proto.events_received()


# --------------------------------------------------------------------------- policy


def test_a_killed_server_is_rejoined_quickly_and_says_so() -> None:
    proto = proto_()
    connect(proto)
    proto.connection_closed(None, None, 50.0, WALL)  # kill -9: no close frame
    assert proto.retry_delay == 1.0  # top of uniform(0.25, 1.0)
    assert proto.status_text == "server not reachable, retrying"
    for n in range(20):  # refused while it restarts: quick, never escalating
        proto.begin_attempt(51.0 + n)
        proto.connection_failed("refused", 51.0 + n, WALL)
        assert proto.retry_delay == 1.0
    changes = of(proto.events_received(), StateChange)
    assert changes[-1].status_text == "server not reachable, retrying"
    assert changes[-1].attempts == 21


def test_accept_then_close_1013_at_once_escalates_until_a_stable_connection() -> None:
    proto = proto_()
    delays = []
    now = 0.0
    for _ in range(8):
        connect(proto, now=now)
        proto.connection_closed(1013, '{"reason":"SLOW_CONSUMER","retry_after":1}', now + 0.1, WALL)
        assert proto.retry_delay is not None
        delays.append(proto.retry_delay)
        now += 0.1 + proto.retry_delay
    assert delays == [1.0, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]  # retry_after 1 is the floor
    assert proto.status_text == "server busy (close 1013), retrying in 30 s"
    # A connection that stays up stable_after (10 s) proves the server copes: de-escalate.
    connect(proto, now=now)
    proto.receive_text(status(), now + 10.0)
    proto.connection_closed(1013, '{"reason":"SLOW_CONSUMER","retry_after":1}', now + 11, WALL)
    assert proto.retry_delay == 1.0 and proto.policy.level == 1


def test_graceful_shutdown_waits_retry_after_then_quick_while_restarting() -> None:
    proto = proto_()
    connect(proto)
    proto.receive_text(status(), 20.0)  # stable
    proto.connection_closed(1001, '{"reason":"SERVER_SHUTDOWN","retry_after":7.5}', 20.0, WALL)
    assert proto.retry_delay == 7.5
    assert proto.status_text == "server busy (close 1001), retrying in 8 s"
    proto.begin_attempt(27.5)
    proto.connection_failed("refused", 27.5, WALL)
    assert proto.retry_delay == 1.0


def test_wire_values_are_clamped() -> None:
    proto = proto_()
    connect(proto)
    proto.connection_closed(1013, '{"reason":"X","retry_after":1e12}', 1.0, WALL)
    assert proto.retry_delay == 120.0
    assert proto.last_close is not None and proto.last_close.retry_after == 120.0
    proto.begin_attempt(2.0)
    proto.receive_text(status(heartbeat=0.001), 2.0)  # would declare us dead every 2 ms
    assert proto.heartbeat_interval == 1.0 and proto.deadline() == 4.0
    proto.receive_text(status(heartbeat=1e9), 3.0)  # would never notice a dead link
    assert proto.deadline() == 3.0 + 2 * 300.0


def test_a_frame_over_the_size_bound_is_refused_and_the_connection_dropped() -> None:
    proto = proto_(max_message_size=1000)
    connect(proto)
    subscribe(proto, "market_data:AAPL", 1.0)
    big = json.loads(md(1))
    big["data"]["padding"] = "x" * 2000
    proto.receive_text(json.dumps(big), 2.0)
    proto.receive_text(md(2), 2.0)  # condemned: nothing more is handled
    assert of(proto.events_received(), Delivered) == []
    assert proto.stats.invalid_frames == 1 and proto.deadline() == 2.0
    proto.check_timeouts(2.0, WALL)
    (dead,) = of(proto.events_received(), ConnectionDead)
    assert "max_message_size" in dead.why
    assert proto.state is ConnectionState.RECONNECTING
    assert proto.status_text == "server busy (bad frame), retrying"


def test_a_do_not_retry_close_is_final() -> None:
    proto = proto_()
    connect(proto)
    proto.connection_closed(1003, "binary frame", 1.0, WALL)
    assert proto.finished and proto.retry_delay is None
    assert proto.status_text == "refused: close 1003"


def test_proxy_starting_answers_are_quick_then_back_off() -> None:
    proto = proto_()
    now = 0.0
    while now < 30.0:
        proto.begin_attempt(now)
        proto.connection_failed("HTTP 502", now, WALL, http_status=502)
        assert proto.retry_delay == 1.0
        now += 1.0
    assert proto.status_text == "server starting (HTTP 502), retrying"
    proto.begin_attempt(now)
    proto.connection_failed("HTTP 502", now, WALL, http_status=502)
    proto.begin_attempt(now + 1)
    proto.connection_failed("HTTP 503", now + 1, WALL, http_status=503, retry_after=9.0)
    assert proto.retry_delay == 9.0  # overload: Retry-After is the floor


# --------------------------------------------------------------------------- alert positions


def test_nothing_seen_resumes_from_the_acks_seq_and_fills_from_its_last_alert_id() -> None:
    proto = proto_()
    connect(proto)
    subscribe(proto, "alerts:*", 1.0, seq=41, last_alert_id=700)
    proto.connection_closed(None, None, 2.0, WALL)
    connect(proto, now=3.0)
    (request,) = sent(proto)
    assert (request["resume_from"], request["epoch"]) == (41, "E1")  # not 0: not the buffer
    proto.receive_text(ack(request, recovered=False, seq=45), 3.0)
    (fetch,) = of(proto.events_received(), FetchAlerts)
    assert fetch.since == 700 and fetch.symbol is None  # not the whole history


def test_a_fresh_store_after_a_restart_does_not_look_like_duplicates() -> None:
    for newest in (None, 3):  # the restarted server's ack: no last_alert_id, or the fresh one
        proto = proto_()
        connect(proto)
        subscribe(proto, "alerts:AAPL", 1.0, seq=0, last_alert_id=0)
        for seq, alert_id in ((1, 152), (2, 153)):
            proto.receive_text(alert_frame("alerts:AAPL", seq, alert_payload(alert_id)), 2.0)
        proto.connection_closed(None, None, 3.0, WALL)
        _, events = resubscribe(proto, 4.0, "E2", recovered=False, seq=3, last_alert_id=newest)
        (fetch,) = of(events, FetchAlerts)
        # A last_alert_id below ours says "fresh store": ask from its start.
        assert fetch.since == (153 if newest is None else 0)
        proto.receive_text(alert_frame("alerts:AAPL", 4, alert_payload(4)), 4.1)
        history = [alert_payload(i) for i in (1, 2, 3, 4) if i > fetch.since]
        proto.receive_alert_history(fetch, history)
        got = [e.message.data.alert_id for e in of(proto.events_received(), Delivered)]
        assert got == ([4] if newest is None else [1, 2, 3, 4])
        proto.receive_text(alert_frame("alerts:AAPL", 5, alert_payload(5)), 5.0)
        assert [e.message.data.alert_id for e in of(proto.events_received(), Delivered)] == [5]


def test_a_replaced_store_is_told_by_its_identity_even_past_our_watermark() -> None:
    """The new store already fired more alerts than we saw of the old one: only its
    store_id tells it apart, and every alert of it is delivered, from 1."""
    for new_store, since in (("S2", 0), ("S1", 2)):  # replaced, or the same file restarted
        proto = proto_()
        connect(proto)
        subscribe(proto, "alerts:AAPL", 1.0, seq=0, last_alert_id=0, store_id="S1")
        for seq, alert_id in ((1, 1), (2, 2)):
            proto.receive_text(alert_frame("alerts:AAPL", seq, alert_payload(alert_id)), 2.0)
        proto.connection_closed(None, None, 3.0, WALL)
        _, events = resubscribe(
            proto, 4.0, "E2", recovered=False, seq=5, last_alert_id=5, store_id=new_store
        )
        (fetch,) = of(events, FetchAlerts)
        assert fetch.since == since
        proto.receive_alert_history(fetch, [alert_payload(i) for i in range(1, 6) if i > since])
        got = [e.message.data.alert_id for e in of(proto.events_received(), Delivered)]
        assert got == list(range(since + 1, 6))
        proto.receive_text(alert_frame("alerts:AAPL", 6, alert_payload(6)), 5.0)
        assert [e.message.data.alert_id for e in of(proto.events_received(), Delivered)] == [6]


def test_a_stale_fill_is_never_delivered_into_a_new_subscription() -> None:
    proto = proto_()
    connect(proto)
    subscribe(proto, "alerts:*", 1.0)
    proto.receive_text(alert_frame("alerts:*", 1, alert_payload(1)), 1.5)
    proto.connection_closed(None, None, 2.0, WALL)
    _, events = resubscribe(proto, 3.0, "E2", recovered=False)
    (old_fetch,) = of(events, FetchAlerts)
    # Unsubscribe and subscribe again while the old fetch is in flight.
    proto.unsubscribe("alerts", "*")
    sent(proto)
    subscribe(proto, "alerts:*", 3.5, seq=0, last_alert_id=9)
    proto.receive_alert_history(old_fetch, [alert_payload(i) for i in (2, 3, 4)])
    assert of(proto.events_received(), Delivered) == []  # dropped, no gap told either
    proto.receive_text(alert_frame("alerts:*", 1, alert_payload(10)), 4.0)
    assert [e.message.data.alert_id for e in of(proto.events_received(), Delivered)] == [10]


def test_a_superseded_fill_delivers_nothing_and_the_newer_one_everything() -> None:
    proto = proto_()
    connect(proto)
    subscribe(proto, "alerts:*", 1.0)
    proto.receive_text(alert_frame("alerts:*", 1, alert_payload(1)), 1.5)
    proto.connection_closed(None, None, 2.0, WALL)
    _, events = resubscribe(proto, 3.0, "E2", recovered=False)
    (first,) = of(events, FetchAlerts)
    proto.receive_text(alert_frame("alerts:*", 1, alert_payload(3)), 3.1)  # held
    proto.connection_closed(None, None, 4.0, WALL)
    _, events = resubscribe(proto, 5.0, "E3", recovered=False)
    (second,) = of(events, FetchAlerts)
    proto.receive_alert_history(first, [alert_payload(i) for i in (2, 3)])
    events = proto.events_received()
    assert of(events, Delivered) == []
    (old_gap,) = [e for e in events if getattr(e, "message_type", None) == "gap"]
    assert old_gap.fill_error == "superseded by a newer gap fill"
    proto.receive_alert_history(second, [alert_payload(i) for i in (2, 3, 4)])
    assert [e.message.data.alert_id for e in of(proto.events_received(), Delivered)] == [2, 3, 4]
