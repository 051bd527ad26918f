"""ServerSession: acks, errors, limits, rate limiting and closes, driven with plain calls."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.core.messages import PROTOCOL_VERSIONS
from jupyter_rtstream.core.ratelimit import TokenBucket
from jupyter_rtstream.core.session import Limits, ServerSession

from ._samples import FakeClock, alert, market_data

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")


def _session(
    limits: Limits | None = None, *, clock: FakeClock | None = None, hub: Hub | None = None
) -> ServerSession:
    return ServerSession(
        hub or Hub(epoch="E1"),
        InstrumentRegistry(SYMBOLS),
        "client-1",
        limits=limits,
        clock=clock or FakeClock(),
        heartbeat_interval=15.0,
        server_version="9.9.9",
    )


def _out(session: ServerSession) -> list[dict[str, Any]]:
    return [json.loads(text) for text in session.data_to_send()]


def _one(session: ServerSession) -> dict[str, Any]:
    out = _out(session)
    assert len(out) == 1, out
    return out[0]


def _sub(symbol: str = "AAPL", kind: str = "market_data", **extra: Any) -> str:
    return json.dumps(
        {"message_type": "subscribe", "subscription_type": kind, "symbol": symbol, **extra}
    )


def _ping(request_id: Any = None) -> str:
    return json.dumps({"message_type": "ping", "request_id": request_id})


# --------------------------------------------------------------------------- greeting


def test_opened_sends_connection_status() -> None:
    session = _session()
    session.opened()
    status = _one(session)
    assert status["message_type"] == "connection_status"
    data = status["data"]
    assert data["client_id"] == "client-1"
    assert data["epoch"] == "E1"
    assert data["protocol_versions"] == list(PROTOCOL_VERSIONS) == ["1.0"]
    assert data["subscriptions"] == []
    assert data["conflated"] == 0
    assert data["heartbeat_interval"] == 15.0
    assert data["server_version"] == "9.9.9"
    assert data["connected_at"].endswith("Z")
    assert status["timestamp"].endswith("Z")


def test_heartbeat_reports_subscriptions_and_conflation() -> None:
    hub = Hub(epoch="E1", outbox_max_messages=8)
    session = _session(hub=hub)
    session.receive_text(_sub("MSFT"))
    session.receive_text(_sub("AAPL"))
    for i in range(10):
        hub.publish(market_data("AAPL", 100.0 + i))
    session.data_to_send()
    session.heartbeat()
    data = _one(session)["data"]
    assert data["subscriptions"] == ["market_data:AAPL", "market_data:MSFT"]
    assert data["conflated"] == session.outbox.conflated > 0


# --------------------------------------------------------------------------- acks


def test_ping_is_acked_with_request_id() -> None:
    session = _session()
    session.receive_text(_ping("p-1"))
    ack = _one(session)
    assert ack["message_type"] == "ack"
    assert ack["data"] == {
        "request_id": "p-1",
        "action": "ping",
        "topic": None,
        "subscriptions": [],
        "recovered": None,
        "seq": None,
        "last_alert_id": None,
        "store_id": None,
    }
    session.receive_text(_ping(17))
    assert _one(session)["data"]["request_id"] == "17"


def test_subscribe_ack_comes_before_the_snapshot() -> None:
    hub = Hub(epoch="E1")
    for i in range(3):
        hub.publish(market_data("AAPL", 100.0 + i))
    session = _session(hub=hub)
    session.receive_text(_sub("aapl", request_id="s1"))
    ack, snapshot = _out(session)
    assert ack["message_type"] == "ack"
    assert ack["data"]["request_id"] == "s1"
    assert ack["data"]["topic"] == "market_data:AAPL"
    assert ack["data"]["subscriptions"] == ["market_data:AAPL"]
    assert ack["data"]["recovered"] is None
    assert (snapshot["message_type"], snapshot["seq"]) == ("market_data", 3)
    hub.publish(market_data("AAPL"))
    assert _one(session)["seq"] == 4


def test_resume_ack_comes_before_the_replay() -> None:
    hub = Hub(epoch="E1")
    for i in range(6):
        hub.publish(alert(alert_id=i))
    session = _session(hub=hub)
    session.receive_text(_sub("AAPL", "alerts", request_id="r", resume_from=2, epoch="E1"))
    out = _out(session)
    assert out[0]["message_type"] == "ack"
    assert out[0]["data"]["recovered"] is True
    assert [(m["message_type"], m["seq"]) for m in out[1:]] == [("alert", s) for s in (3, 4, 5, 6)]


def test_subscribe_ack_carries_the_topics_position() -> None:
    """A client that has seen nothing on a topic can resume exactly from the ack's seq."""
    hub = Hub(epoch="E1")
    for i in range(4):
        hub.publish(alert(alert_id=i))
    session = _session(hub=hub)
    session.receive_text(_sub("AAPL", "alerts", request_id="a"))
    assert _one(session)["data"]["seq"] == 4  # no snapshot for alert topics
    hub.publish(alert(alert_id=9))
    assert _one(session)["seq"] == 5
    session.receive_text(_sub("MSFT", request_id="m"))  # a topic that never published
    assert _one(session)["data"]["seq"] == 0
    session.receive_text(_ping("p"))
    assert _one(session)["data"]["seq"] is None  # only subscribes carry a position


def test_resume_with_another_epoch_is_not_recovered() -> None:
    hub = Hub(epoch="E1")
    for i in range(3):
        hub.publish(market_data("AAPL", 100.0 + i))
        hub.publish(alert(alert_id=i))
    session = _session(hub=hub)
    session.receive_text(_sub("AAPL", resume_from=1, epoch="E0"))
    ack, snapshot = _out(session)
    assert ack["data"]["recovered"] is False
    assert snapshot["seq"] == 3
    session.receive_text(_sub("AAPL", "alerts", resume_from=1, epoch="E0"))
    assert _one(session)["data"]["recovered"] is False  # no snapshot for alerts


def test_subscribe_by_instrument_id_and_star_alerts() -> None:
    session = _session()
    session.receive_text(
        json.dumps(
            {"message_type": "subscribe", "subscription_type": "analytics", "instrument_id": 2}
        )
    )
    assert _one(session)["data"]["topic"] == "analytics:MSFT"
    session.receive_text(_sub("*", "alerts"))
    assert _one(session)["data"]["topic"] == "alerts:*"


def test_unsubscribe_is_acked_and_stops_the_stream() -> None:
    hub = Hub(epoch="E1")
    session = _session(hub=hub)
    session.receive_text(_sub("AAPL"))
    session.data_to_send()
    session.receive_text(
        json.dumps(
            {
                "message_type": "unsubscribe",
                "subscription_type": "market_data",
                "symbol": "AAPL",
                "request_id": "u",
            }
        )
    )
    ack = _one(session)
    assert ack["data"]["action"] == "unsubscribe"
    assert ack["data"]["subscriptions"] == []
    hub.publish(market_data("AAPL"))
    assert _out(session) == []


def test_closed_disconnects_from_the_hub() -> None:
    hub = Hub(epoch="E1")
    session = _session(hub=hub)
    session.receive_text(_sub("AAPL"))
    session.closed()
    assert "client-1" not in hub.clients
    assert not hub.topics["market_data:AAPL"].subscribers


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"message_type":"ping","request_id":"e1"', "INVALID_JSON"),
        ('{"message_type":"subscribe","request_id":"e1"}', "INVALID_MESSAGE"),
        ('{"message_type":"teleport","request_id":"e1"}', "UNKNOWN_MESSAGE_TYPE"),
        ('{"message_type":"ping","version":"2.0","request_id":"e1"}', "UNSUPPORTED_VERSION"),
        (_sub("ZZZZ", request_id="e1"), "UNKNOWN_INSTRUMENT"),
        (
            '{"message_type":"subscribe","subscription_type":"market_data","instrument_id":99,'
            '"request_id":"e1"}',
            "UNKNOWN_INSTRUMENT",
        ),
        (
            '{"message_type":"subscribe","subscription_type":"market_data","symbol":"AAPL",'
            '"instrument_id":2,"request_id":"e1"}',
            "UNKNOWN_INSTRUMENT",
        ),
    ],
)
def test_rejected_frames_get_a_typed_error_and_the_session_lives_on(frame: str, code: str) -> None:
    session = _session()
    session.receive_text(frame)
    error = _one(session)
    assert error["message_type"] == "error"
    assert error["data"]["error_code"] == code
    expected_rid = None if code == "INVALID_JSON" else "e1"
    assert error["data"]["request_id"] == expected_rid
    assert error["data"]["timestamp"].endswith("Z")
    assert session.close_request is None
    assert session.rejected == 1
    session.receive_text(_ping("after"))
    assert _one(session)["message_type"] == "ack"


def test_subscription_limit() -> None:
    session = _session(Limits(max_subscriptions=2))
    session.receive_text(_sub("AAPL"))
    session.receive_text(_sub("MSFT"))
    session.data_to_send()
    session.receive_text(_sub("GOOG", request_id="third"))
    error = _one(session)
    assert error["data"]["error_code"] == "SUBSCRIPTION_LIMIT"
    assert error["data"]["request_id"] == "third"
    assert sorted(session.outbox.subscriptions) == ["market_data:AAPL", "market_data:MSFT"]
    # Re-subscribing to a topic already held does not count against the limit.
    session.receive_text(_sub("AAPL", request_id="again"))
    assert _one(session)["message_type"] == "ack"
    # ...and a slot freed by unsubscribe can be reused.
    session.receive_text(_sub("MSFT").replace("subscribe", "unsubscribe", 1))
    session.receive_text(_sub("GOOG"))
    out = _out(session)
    assert [m["message_type"] for m in out] == ["ack", "ack"]
    assert out[-1]["data"]["subscriptions"] == ["market_data:AAPL", "market_data:GOOG"]


def test_internal_error_keeps_the_session_working(monkeypatch: pytest.MonkeyPatch) -> None:
    hub = Hub(epoch="E1")
    session = _session(hub=hub)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(hub, "subscribe", broken)
    session.receive_text(_sub("AAPL", request_id="x1"))
    error = _one(session)
    assert error["data"]["error_code"] == "INTERNAL_ERROR"
    assert "RuntimeError" in error["data"]["error_message"]
    assert "boom" not in error["data"]["error_message"]  # no internals leak
    assert session.close_request is None
    monkeypatch.undo()
    session.receive_text(_ping("p"))
    assert _one(session)["message_type"] == "ack"
    session.receive_text(_sub("AAPL"))
    assert _one(session)["data"]["subscriptions"] == ["market_data:AAPL"]


def test_regression_internal_error_echoes_request_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Regression test.

    Fixed (core/session.py, `ServerSession.receive_text`, the ``except Exception`` branch):
    the INTERNAL_ERROR ``ProtocolError`` is built without a request_id, so the error of a
    request that had ``request_id: "x1"`` carries ``request_id: null``. docs/protocol.md: `error`
    echoes the request's `request_id` when it had one (issue 2 item 4: "typed error for
    every rejected frame with the request's request_id echoed"). Expected "x1" (e.g. from
    ``request_id_of(text)``)."""
    hub = Hub(epoch="E1")
    session = _session(hub=hub)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(hub, "subscribe", broken)
    session.receive_text(_sub("AAPL", request_id="x1"))
    error = _one(session)
    assert error["data"]["error_code"] == "INTERNAL_ERROR"
    assert error["data"]["request_id"] == "x1"


@pytest.mark.parametrize(
    "frame",
    [
        r'{"message_type":"ping","request_id":"\ud800"}',
        r'{"message_type":"subscribe","subscription_type":"market_data","symbol":"AAPL","request_id":"\udfff"}',
        r'{"message_type":"nope","request_id":"\ud83d"}',
    ],
)
def test_regression_lone_surrogate_request_id_is_answered(frame: str) -> None:
    """Regression test.

    Fixed (core/codec.py `_request_id`, reached via `_classify`; crash in core/session.py
    `ServerSession._refuse` -> `encode(error)`): a pure-ASCII frame whose request_id is the
    JSON escape of a lone surrogate (``"\\ud800"``) fails pydantic's validate_json (INVALID_
    MESSAGE), then ``json.loads`` in the slow path decodes the escape into the str
    ``'\\ud800'``, which is echoed as ``ProtocolError.request_id``. ``_refuse`` then calls
    ``encode(Error(...))`` and pydantic raises ``PydanticSerializationError`` (surrogates not
    allowed) *inside the except handler*, so the exception escapes ``receive_text`` (the
    handler's on_message; tornado aborts the connection) instead of the client getting a
    typed error. Expected: an ``error`` frame (request_id dropped or sanitized) and the
    session carries on."""
    session = _session()
    session.receive_text(frame)
    error = _one(session)
    assert error["message_type"] == "error"
    assert error["data"]["error_code"] in {"INVALID_MESSAGE", "UNKNOWN_MESSAGE_TYPE"}
    assert session.close_request is None


# --------------------------------------------------------------------------- rate limiting


def test_rate_limit_burst_then_rate_limited_then_1008() -> None:
    clock = FakeClock()
    limits = Limits(rate_limit=10.0, rate_burst=5, flood_tolerance=3)
    session = _session(limits, clock=clock)
    for i in range(5):
        session.receive_text(_ping(i))
    assert [m["message_type"] for m in _out(session)] == ["ack"] * 5
    for i in range(3):
        session.receive_text(_ping(f"over-{i}"))
        error = _one(session)
        assert error["data"]["error_code"] == "RATE_LIMITED"
        assert error["data"]["request_id"] == f"over-{i}"
        assert session.close_request is None
    session.receive_text(_ping("flood"))
    error = _one(session)
    assert error["data"]["error_code"] == "RATE_LIMITED"
    assert error["data"]["request_id"] == "flood"
    assert session.close_request is not None
    code, reason = session.close_request
    assert code == 1008
    assert json.loads(reason) == {"reason": "RATE_LIMITED", "retry_after": 1.0}
    # Once closing, further frames are ignored.
    clock.advance(100.0)
    session.receive_text(_ping("late"))
    assert _out(session) == []
    assert session.received == 10


def test_default_limits_and_retry_after() -> None:
    limits = Limits()
    assert (limits.max_message_size, limits.max_subscriptions) == (64 * 1024, 100)
    assert (limits.rate_limit, limits.rate_burst, limits.flood_tolerance) == (50.0, 100, 100)
    session = _session(clock=FakeClock())
    for _ in range(limits.rate_burst + limits.flood_tolerance + 1):
        session.receive_text(_ping())
    assert session.close_request is not None
    code, reason = session.close_request
    assert code == 1008
    assert json.loads(reason) == {"reason": "RATE_LIMITED", "retry_after": 2.0}


def test_tokens_refill_with_time() -> None:
    clock = FakeClock()
    session = _session(Limits(rate_limit=10.0, rate_burst=5, flood_tolerance=50), clock=clock)
    for _ in range(6):
        session.receive_text(_ping())
    assert _out(session)[-1]["data"]["error_code"] == "RATE_LIMITED"
    clock.advance(0.35)  # 3.5 tokens
    for _ in range(4):
        session.receive_text(_ping())
    assert [m["message_type"] for m in _out(session)] == ["ack", "ack", "ack", "error"]
    clock.advance(3600.0)  # capped at the burst
    for _ in range(6):
        session.receive_text(_ping())
    assert [m["message_type"] for m in _out(session)] == ["ack"] * 5 + ["error"]


def test_accepted_frames_pay_back_the_flood_budget() -> None:
    clock = FakeClock(0.0)
    session = _session(Limits(rate_limit=10.0, rate_burst=1, flood_tolerance=2), clock=clock)
    session.receive_text(_ping())  # accepted (the burst)
    session.receive_text(_ping())  # over budget: 1
    session.receive_text(_ping())  # over budget: 2, still tolerated
    clock.advance(0.15)
    session.receive_text(_ping())  # accepted: over budget back to 1
    session.receive_text(_ping())  # over budget: 2 (would be 3 without the payback)
    assert session.close_request is None
    assert [m["message_type"] for m in _out(session)] == ["ack", "error", "error", "ack", "error"]
    session.receive_text(_ping())  # over budget: 3 > 2
    assert session.close_request is not None
    assert session.close_request[0] == 1008


def test_token_bucket() -> None:
    clock = FakeClock(0.0)
    bucket = TokenBucket(2.0, 3, clock)
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    clock.advance(0.5)
    assert [bucket.take() for _ in range(2)] == [True, False]
    clock.advance(0.25)
    assert not bucket.take()  # half a token
    clock.advance(0.25)
    assert bucket.take()


# --------------------------------------------------------------------------- size and binary


def test_oversize_frame_gets_error_then_1009() -> None:
    session = _session(Limits(max_message_size=100))
    frame = _ping("x" * 100)
    assert len(frame) > 100
    session.receive_text(frame)
    error = _one(session)
    assert error["data"]["error_code"] == "MESSAGE_TOO_LARGE"
    assert session.close_request is not None
    code, reason = session.close_request
    assert code == 1009
    assert json.loads(reason) == {"reason": "MESSAGE_TOO_LARGE"}
    session.receive_text(_ping())
    assert _out(session) == []


def test_frame_at_the_size_limit_is_processed() -> None:
    frame = _ping("x" * 40)
    session = _session(Limits(max_message_size=len(frame)))
    session.receive_text(frame)
    assert _one(session)["message_type"] == "ack"


@pytest.mark.parametrize("char", ["é", "€", "📈"])
def test_multibyte_frame_over_the_limit_in_bytes_but_not_in_chars(char: str) -> None:
    limit = 100
    width = len(char.encode("utf-8"))
    n = limit // width + 1
    frame = char * n
    assert len(frame) <= limit < len(frame.encode("utf-8"))
    session = _session(Limits(max_message_size=limit))
    session.receive_text(frame)
    error = _one(session)
    assert error["data"]["error_code"] == "MESSAGE_TOO_LARGE"
    assert session.close_request is not None
    assert session.close_request[0] == 1009
    # The same number of bytes minus one character fits: an ordinary INVALID_JSON.
    fits = _session(Limits(max_message_size=limit))
    fits.receive_text(char * (limit // width))
    assert _one(fits)["data"]["error_code"] == "INVALID_JSON"
    assert fits.close_request is None


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    limit=st.integers(min_value=1, max_value=120),
)
def test_size_check_is_exact_in_utf8_bytes(text: str, limit: int) -> None:
    session = _session(Limits(max_message_size=limit))
    session.receive_text(text)
    too_big = len(text.encode("utf-8")) > limit
    assert (session.close_request is not None) == too_big
    if too_big:
        assert session.close_request is not None
        assert session.close_request[0] == 1009


def test_binary_frame_closes_1003() -> None:
    session = _session()
    session.receive_binary()
    assert session.close_request is not None
    code, reason = session.close_request
    assert code == 1003
    assert json.loads(reason) == {"reason": "BINARY_FRAME"}
    session.receive_text(_ping())
    assert _out(session) == []


# --------------------------------------------------------------------------- fuzzing

_KEYS = st.sampled_from(
    ["message_type", "version", "request_id", "subscription_type", "symbol", "instrument_id"]
)
_VALUES = st.one_of(
    st.sampled_from(["subscribe", "unsubscribe", "ping", "market_data", "alerts", "AAPL", "*"]),
    st.none(),
    st.integers(min_value=-5, max_value=10),
    # Lone surrogates are left out: see test_bug_lone_surrogate_request_id_crashes_receive_text.
    st.text(max_size=10),
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_KEYS, _VALUES, max_size=6) | st.text(max_size=30), max_size=8))
def test_every_frame_gets_exactly_one_answer(frames: list[Any]) -> None:
    session = _session(Limits(rate_burst=1000))
    for frame in frames:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        session.receive_text(text)
        out = _out(session)
        assert len(out) == 1
        assert out[0]["message_type"] in {"ack", "error"}
        assert session.close_request is None


def test_summary_and_frames_to_send_are_the_handlers_whole_view() -> None:
    session = _session()
    session.opened()
    session.receive_text(_ping())
    frames = session.frames_to_send()
    assert [json.loads(f.text)["message_type"] for f in frames] == ["connection_status", "ack"]
    assert session.frames_to_send() == []
    summary = session.summary()
    assert summary["client_id"] == session.client_id
    assert (summary["received"], summary["rejected"]) == (1, 0)
    session.close(1001, "bye")
    assert session.close_request == (1001, "bye")
