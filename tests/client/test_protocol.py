"""ClientProtocol without sockets: requests and acks, resume, gaps, deadlines, closes.

Each test plays the server's side with real protocol frames and moves time by passing
``now``; the protocol's answers are its events and the texts it wants sent.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jupyter_rtstream.client import (
    AuthenticationError,
    ClientProtocol,
    CloseInfo,
    ConnectionLost,
    ConnectionState,
    GapEvent,
    NotConnectedError,
    RequestError,
    StateChange,
    StreamClosed,
    StreamOptions,
)
from jupyter_rtstream.client.events import (
    ConnectionDead,
    ControlReceived,
    Delivered,
    Event,
    FetchAlerts,
    RequestOutcome,
)
from jupyter_rtstream.core.codec import encode
from jupyter_rtstream.core.messages import (
    Ack,
    AckPayload,
    ConnectionStatus,
    ConnectionStatusPayload,
    Error,
    ErrorPayload,
    MarketData,
    MarketDataPayload,
)

from ._fake_server import alert_frame, alert_payload

WALL = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
TOPIC = "market_data:AAPL"
SHUTDOWN = '{"reason": "SERVER_SHUTDOWN", "retry_after": 3}'


def status(epoch: str = "E1", heartbeat: float | None = 1.0) -> str:
    return encode(
        ConnectionStatus(
            data=ConnectionStatusPayload(
                client_id="c1",
                connected_at=WALL,
                subscriptions=[],
                last_heartbeat=WALL,
                epoch=epoch,
                heartbeat_interval=heartbeat,
            )
        )
    )


def ack(request: dict[str, Any], recovered: bool | None = None) -> str:
    topic = None
    if request["message_type"] != "ping":
        topic = f"{request['subscription_type']}:{request['symbol']}"
    action = request["message_type"]
    data = AckPayload(
        request_id=request["request_id"], action=action, topic=topic, recovered=recovered
    )
    return encode(Ack(data=data))


def error(request: dict[str, Any], code: str = "UNKNOWN_INSTRUMENT") -> str:
    payload = ErrorPayload(
        error_code=code, error_message="no such symbol", request_id=request["request_id"]
    )
    return encode(Error(data=payload))


def md(seq: int, topic: str = TOPIC) -> str:
    data = MarketDataPayload(instrument_id=1, symbol="AAPL", price=1.0, volume=1.0, timestamp=WALL)
    return encode(MarketData(topic=topic, seq=seq, data=data))


def sent(proto: ClientProtocol) -> list[dict[str, Any]]:
    return [json.loads(text) for text in proto.data_to_send()]


def of(events: list[Event], kind: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def delivered(events: list[Event]) -> list[int]:
    return [e.message.seq for e in of(events, Delivered)]


def connect(proto: ClientProtocol, now: float = 0.0, epoch: str = "E1") -> list[Event]:
    proto.begin_attempt(now)
    proto.receive_text(status(epoch), now)
    return proto.events_received()


def protocol(**options: Any) -> ClientProtocol:
    return ClientProtocol(StreamOptions(rng=random.Random(1), **options))


def subscribed(proto: ClientProtocol, topic: str = TOPIC) -> dict[str, Any]:
    """Subscribe while connected and ack it; returns the request that was sent."""
    kind, symbol = topic.split(":")
    proto.subscribe(kind, symbol)
    (request,) = sent(proto)
    proto.receive_text(ack(request), 1.0)
    proto.events_received()
    return request


# --------------------------------------------------------------------------- requests


def test_an_ack_resolves_the_subscribe_ticket() -> None:
    proto = protocol()
    connect(proto)
    ticket = proto.subscribe("market_data", "aapl")
    (request,) = sent(proto)
    assert request["message_type"] == "subscribe" and request["symbol"] == "AAPL"
    assert "resume_from" not in request or request["resume_from"] is None
    proto.receive_text(ack(request), 1.0)
    (outcome,) = of(proto.events_received(), RequestOutcome)
    assert (outcome.ticket, outcome.action, outcome.topic) == (ticket, "subscribe", TOPIC)
    assert outcome.ack is not None and outcome.error is None
    assert proto.requests.open == {} and proto.requests.sent == {}


def test_a_subscribe_made_while_disconnected_is_answered_by_the_next_connection() -> None:
    proto = protocol()
    ticket = proto.subscribe("market_data", "AAPL")
    assert sent(proto) == []
    connect(proto)
    (request,) = sent(proto)
    proto.receive_text(ack(request), 1.0)
    (outcome,) = of(proto.events_received(), RequestOutcome)
    assert outcome.ticket == ticket and outcome.ack is not None


def test_an_error_answer_becomes_a_request_error_and_forgets_the_topic() -> None:
    proto = protocol()
    connect(proto)
    ticket = proto.subscribe("market_data", "NOPE")
    (request,) = sent(proto)
    proto.receive_text(error(request), 1.0)
    events = proto.events_received()
    (outcome,) = of(events, RequestOutcome)
    assert outcome.ticket == ticket and isinstance(outcome.error, RequestError)
    assert outcome.error.code == "UNKNOWN_INSTRUMENT"
    assert outcome.error.request_id == request["request_id"]
    assert of(events, ControlReceived)[0].message.message_type == "error"
    assert "market_data:NOPE" not in proto.book


def test_unsubscribe_and_ping_need_a_live_connection() -> None:
    proto = protocol()
    proto.subscribe("market_data", "AAPL")
    assert proto.unsubscribe("market_data", "AAPL") is None  # nothing to tell a server
    (refused,) = of(proto.events_received(), RequestOutcome)
    assert isinstance(refused.error, RequestError) and refused.error.code == "UNSUBSCRIBED"
    with pytest.raises(NotConnectedError):
        proto.ping()
    connect(proto)
    subscribed(proto)
    ticket = proto.unsubscribe("market_data", "AAPL")
    ping = proto.ping()
    unsub_request, ping_request = sent(proto)
    assert unsub_request["message_type"] == "unsubscribe"
    proto.receive_text(ack(ping_request), 2.0)
    proto.receive_text(ack(unsub_request), 2.0)
    outcomes = of(proto.events_received(), RequestOutcome)
    assert [(o.ticket, o.action) for o in outcomes] == [(ping, "ping"), (ticket, "unsubscribe")]
    assert proto.book.topics == {}


def test_a_lost_connection_fails_its_requests_but_subscribes_wait_for_the_next() -> None:
    proto = protocol()
    connect(proto)
    ping = proto.ping()
    sub = proto.subscribe("market_data", "AAPL")
    sent(proto)
    proto.connection_closed(None, None, 1.0, WALL)
    (outcome,) = of(proto.events_received(), RequestOutcome)
    assert outcome.ticket == ping and isinstance(outcome.error, NotConnectedError)
    assert proto.requests.open.keys() == {sub}
    assert proto.data_to_send() == []


def test_a_forgotten_ticket_gets_no_outcome() -> None:
    proto = protocol()
    connect(proto)
    ticket = proto.ping()
    (request,) = sent(proto)
    proto.forget(ticket)
    proto.receive_text(ack(request), 1.0)
    assert of(proto.events_received(), RequestOutcome) == []


# --------------------------------------------------------------------------- frames


def test_duplicates_invalid_frames_and_other_majors_are_dropped() -> None:
    proto = protocol()
    connect(proto)
    subscribed(proto)
    for frame in (md(1), md(2), md(2), md(1), md(4)):
        proto.receive_text(frame, 2.0)
    assert delivered(proto.events_received()) == [1, 2, 4]
    assert (proto.stats.duplicates, proto.stats.missed) == (2, 1)
    newer_major = json.loads(md(5))
    newer_major["version"] = "2.0"
    for bad in ("not json", b"\x00binary", json.dumps(newer_major), md(1, "market_data:MSFT")):
        proto.receive_text(bad, 3.0)
    assert proto.stats.invalid_frames == 3 and proto.stats.stray == 1
    assert (
        proto.stats.last_invalid is not None and "UNSUPPORTED_VERSION" in proto.stats.last_invalid
    )
    assert delivered(proto.events_received()) == []


def test_after_a_reconnect_every_topic_resumes_from_its_last_seq() -> None:
    proto = protocol()
    connect(proto)
    subscribed(proto)
    for seq in (1, 2, 3):
        proto.receive_text(md(seq), 2.0)
    proto.events_received()
    proto.connection_closed(1013, '{"reason": "SLOW_CONSUMER", "retry_after": 1}', 3.0, WALL)
    assert proto.state is ConnectionState.RECONNECTING
    assert proto.retry_delay is not None and proto.retry_delay >= 1.0
    events = connect(proto, now=5.0)
    (request,) = sent(proto)
    assert (request["resume_from"], request["epoch"]) == (3, "E1")
    proto.receive_text(ack(request, recovered=True), 5.0)
    for seq in (2, 3, 4, 5):  # the server replays from its buffer; 2 and 3 were seen
        proto.receive_text(md(seq), 5.1)
    events = proto.events_received()
    assert delivered(events) == [4, 5] and of(events, GapEvent) == []
    assert proto.stats.reconnects == 1


@pytest.mark.parametrize(("epoch", "reason"), [("E2", "epoch_changed"), ("E1", "out_of_buffer")])
def test_an_unrecovered_resume_is_reported_as_a_gap(epoch: str, reason: str) -> None:
    proto = protocol()
    connect(proto)
    subscribed(proto)
    for seq in (1, 2, 3):
        proto.receive_text(md(seq), 2.0)
    proto.connection_closed(None, None, 3.0, WALL)
    connect(proto, now=4.0, epoch=epoch)
    (request,) = sent(proto)
    proto.receive_text(ack(request, recovered=False), 4.0)
    proto.receive_text(md(1 if epoch == "E2" else 9), 4.0)  # the fresh snapshot
    events = proto.events_received()
    (gap,) = of(events, GapEvent)
    assert gap == GapEvent(TOPIC, reason, 3, "E1", epoch)  # type: ignore[arg-type]
    assert delivered(events) == [1 if epoch == "E2" else 9]
    assert proto.stats.gaps == 1
    state = proto.book.topics[TOPIC]
    assert state.epoch == epoch and state.last_seq == (1 if epoch == "E2" else 9)


def test_an_alert_gap_is_filled_from_the_history_then_reported() -> None:
    proto = protocol()
    connect(proto)
    subscribed(proto, "alerts:*")
    for alert_id in (1, 2):
        proto.receive_text(alert_frame("alerts:*", alert_id, alert_payload(alert_id)), 2.0)
    assert len(of(proto.events_received(), Delivered)) == 2
    proto.connection_closed(1001, SHUTDOWN, 3.0, WALL)
    connect(proto, now=4.0, epoch="E2")
    (request,) = sent(proto)
    proto.receive_text(ack(request, recovered=False), 4.0)
    (fetch,) = of(proto.events_received(), FetchAlerts)
    assert fetch.since == 2 and fetch.gap.reason == "epoch_changed"
    # A live alert arrives while the history is fetched: held, then merged by alert_id.
    proto.receive_text(alert_frame("alerts:*", 1, alert_payload(5)), 4.1)
    assert of(proto.events_received(), Delivered) == []
    history = [alert_payload(i) for i in (1, 2, 3, 4, 5)]
    proto.receive_alert_history(fetch, history)
    events = proto.events_received()
    assert [e.message.data.alert_id for e in of(events, Delivered)] == [3, 4, 5]
    (gap,) = of(events, GapEvent)
    assert gap.filled == 2 and gap.fill_error is None and isinstance(events[-1], GapEvent)
    # A failed fetch still reports the gap and releases the held alerts.
    proto.connection_closed(1001, SHUTDOWN, 5.0, WALL)
    connect(proto, now=6.0, epoch="E3")
    (request,) = sent(proto)
    proto.receive_text(ack(request, recovered=False), 6.0)
    (fetch,) = of(proto.events_received(), FetchAlerts)
    assert fetch.since == 5
    proto.receive_text(alert_frame("alerts:*", 1, alert_payload(6)), 6.1)
    proto.receive_alert_history(fetch, None, "ClientError: HTTP 500")
    events = proto.events_received()
    assert [e.message.data.alert_id for e in of(events, Delivered)] == [6]
    (gap,) = of(events, GapEvent)
    assert gap.filled is None and gap.fill_error == "ClientError: HTTP 500"


# --------------------------------------------------------------------------- deadlines


def test_missed_heartbeats_make_the_connection_dead() -> None:
    proto = protocol(missed_heartbeats=2.0)
    connect(proto, now=10.0)  # heartbeat 1.0 s
    assert proto.deadline() == 12.0
    proto.receive_text(status(), 11.5)
    assert proto.deadline() == 13.5
    proto.events_received()
    proto.check_timeouts(13.4, WALL)
    assert proto.events_received() == [] and proto.live
    proto.check_timeouts(13.5, WALL)
    events = proto.events_received()
    assert of(events, ConnectionDead) == [ConnectionDead(1, "no message for 2 heartbeat intervals")]
    assert proto.last_close == CloseInfo(None, "heartbeat timeout")
    assert isinstance(proto.last_error, ConnectionLost)
    assert "dead connection" in str(proto.last_error)
    assert proto.state is ConnectionState.RECONNECTING and proto.deadline() is None


def test_a_server_without_heartbeats_is_only_watched_for_closes() -> None:
    proto = protocol()
    proto.begin_attempt(0.0)
    proto.receive_text(status(heartbeat=0.0), 0.0)
    assert proto.live and proto.deadline() is None


def test_no_connection_status_within_the_open_timeout() -> None:
    proto = protocol(open_timeout=5.0)
    proto.begin_attempt(100.0)
    assert proto.deadline() == 105.0
    proto.check_timeouts(105.0, WALL)
    (dead,) = of(proto.events_received(), ConnectionDead)
    assert "no connection_status" in dead.why
    assert proto.last_close is None  # never connected: not a close the server sent
    assert proto.state is ConnectionState.RECONNECTING


# --------------------------------------------------------------------------- states, closes


def test_states_attempts_and_their_reset_on_connection_status() -> None:
    proto = protocol(backoff_base=0.5)
    for n in (1, 2, 3):
        proto.begin_attempt(float(n))
        proto.connection_failed("refused", float(n), WALL)
        assert proto.policy.attempts == n
    changes = of(proto.events_received(), StateChange)
    assert [(c.state, c.attempts) for c in changes] == [
        (ConnectionState.RECONNECTING, 1),
        (ConnectionState.RECONNECTING, 2),
        (ConnectionState.RECONNECTING, 3),
    ]
    assert changes[0].previous is ConnectionState.CONNECTING
    assert all(c.next_retry_at is not None and c.next_retry_at >= WALL for c in changes)
    assert proto.stats.connection_attempts == 3
    events = connect(proto, now=10.0)
    (change,) = of(events, StateChange)
    assert (change.state, change.attempts) == (ConnectionState.CONNECTED, 0)
    assert proto.next_retry_at is None and proto.retry_delay is None
    assert proto.stats.reconnects == 0  # the first connection is no reconnect


def test_last_close_keeps_the_servers_reason_across_failed_attempts() -> None:
    proto = protocol()
    connect(proto)
    proto.connection_closed(1001, SHUTDOWN, 1.0, WALL)
    shutdown = CloseInfo(1001, "SERVER_SHUTDOWN", 3.0)
    assert proto.last_close == shutdown
    assert proto.retry_delay is not None and proto.retry_delay >= 3.0
    assert proto.next_retry_at == WALL + timedelta(seconds=proto.retry_delay)
    assert "SERVER_SHUTDOWN" in str(proto.last_error)
    proto.begin_attempt(4.0)
    proto.connection_failed("could not connect: Stream closed", 4.0, WALL)
    assert "could not connect" in str(proto.last_error)
    assert proto.last_close == shutdown
    connect(proto, now=5.0)
    proto.connection_closed(None, None, 6.0, WALL)  # the socket died: no close frame
    assert proto.last_close == shutdown


def test_refused_credentials_are_final_and_fail_every_request() -> None:
    proto = protocol()
    ticket = proto.subscribe("market_data", "AAPL")
    proto.begin_attempt(0.0)
    proto.connection_failed("HTTP 403", 0.0, WALL, http_status=403)
    events = proto.events_received()
    assert proto.state is ConnectionState.DISCONNECTED and proto.retry_delay is None
    assert isinstance(proto.final_error, AuthenticationError) and proto.final_error.status == 403
    (outcome,) = of(events, RequestOutcome)
    assert outcome.ticket == ticket and outcome.error is proto.final_error
    with pytest.raises(AuthenticationError):
        proto.subscribe("market_data", "MSFT")


def test_a_wrong_endpoint_is_final() -> None:
    # Issue 16: 404 is a refusal, final before and after the first connection (it used to
    # be retried once connected; a proxy in front of a starting server answers 502-504).
    first = protocol()
    first.begin_attempt(0.0)
    first.connection_failed("HTTP 404", 0.0, WALL, http_status=404)
    assert first.finished and type(first.final_error) is StreamClosed
    assert first.status_text == "refused: 404"
    later = protocol()
    connect(later)
    later.connection_closed(None, None, 1.0, WALL)
    later.begin_attempt(2.0)
    later.connection_failed("HTTP 404", 2.0, WALL, http_status=404)
    assert later.finished and type(later.final_error) is StreamClosed


def test_close_stops_reconnection_and_fails_open_requests() -> None:
    proto = protocol()
    connect(proto)
    proto.connection_closed(1001, SHUTDOWN, 1.0, WALL)
    connect(proto, now=2.0)
    ticket = proto.subscribe("market_data", "AAPL")
    before = proto.last_error
    proto.close()
    proto.connection_closed(1000, "client closed", 3.0, WALL)  # our own close, echoed
    assert proto.retry_delay is None and proto.last_error is before
    assert proto.last_close == CloseInfo(1001, "SERVER_SHUTDOWN", 3.0)
    proto.finish(None)
    events = proto.events_received()
    (outcome,) = of(events, RequestOutcome)
    assert outcome.ticket == ticket and isinstance(outcome.error, StreamClosed)
    assert of(events, StateChange)[-1].state is ConnectionState.DISCONNECTED
    assert proto.final_error is None
    with pytest.raises(StreamClosed):
        proto.raise_if_final()
