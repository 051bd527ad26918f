"""The pure resume logic: no duplicates, gaps reported, alert gaps merged by alert_id."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jupyter_rtstream.client.state import CloseInfo
from jupyter_rtstream.client.subscriptions import SubscriptionBook
from jupyter_rtstream.core.messages import (
    Ack,
    AckPayload,
    Alert,
    MarketData,
    MarketDataPayload,
    utc_now,
)

from ._fake_server import alert_payload


def market(seq: int, topic: str = "market_data:AAPL") -> MarketData:
    data = MarketDataPayload(
        instrument_id=1, symbol="AAPL", price=100.0 + seq, volume=1.0, timestamp=utc_now()
    )
    return MarketData(topic=topic, seq=seq, data=data)


def ack(topic: str, recovered: bool | None, request_id: str = "r") -> Ack:
    return Ack(
        data=AckPayload(request_id=request_id, action="subscribe", topic=topic, recovered=recovered)
    )


def test_first_subscribe_is_plain_then_resumes_from_last_seq() -> None:
    book = SubscriptionBook()
    state = book.add("market_data", " aapl ")
    assert state.topic == "market_data:AAPL"
    first = book.subscribe_request(state, "r1")
    assert first.resume_from is None and first.epoch is None
    assert book.on_subscribe_ack(ack(state.topic, None), "E1") is None
    for seq in (7, 8, 9):
        assert book.accept(market(seq), "E1")
    again = book.subscribe_request(state, "r2")
    assert (again.resume_from, again.epoch) == (9, "E1")


def test_invalid_subscriptions_are_refused_before_anything_is_sent() -> None:
    book = SubscriptionBook()
    for kind, symbol in (("quotes", "AAPL"), ("market_data", "no spaces!"), ("market_data", "*")):
        with pytest.raises(ValueError):
            book.add(kind, symbol)
    assert not list(book)
    assert book.add("alerts", "*").topic == "alerts:*"


def test_replayed_duplicates_are_dropped_and_gaps_counted() -> None:
    book = SubscriptionBook()
    state = book.add("market_data", "AAPL")
    book.on_subscribe_ack(ack(state.topic, None), "E1")
    delivered = [s for s in (1, 2, 3, 2, 3, 4, 4, 6, 7) if book.accept(market(s), "E1")]
    assert delivered == [1, 2, 3, 4, 6, 7]
    assert book.stats.duplicates == 3
    assert book.stats.missed == 1
    # A message for a topic we do not hold is not delivered.
    assert not book.accept(market(1, "market_data:MSFT"), "E1")
    assert book.stats.stray == 1


def test_epoch_change_is_a_gap_and_restarts_sequence_numbers() -> None:
    book = SubscriptionBook()
    state = book.add("market_data", "AAPL")
    book.on_subscribe_ack(ack(state.topic, None), "E1")
    assert book.accept(market(40), "E1")
    book.subscribe_request(state, "r2")
    gap = book.on_subscribe_ack(ack(state.topic, False), "E2")
    assert gap is not None
    assert (gap.reason, gap.resume_from, gap.previous_epoch, gap.epoch) == (
        "epoch_changed",
        40,
        "E1",
        "E2",
    )
    assert book.accept(market(3), "E2")  # the new epoch's snapshot: low seq, delivered
    assert book.accept(market(4), "E2")
    assert not book.accept(market(4), "E2")
    assert book.subscribe_request(state, "r3").resume_from == 4
    same_epoch_gap = book.on_subscribe_ack(ack(state.topic, False), "E2")
    assert same_epoch_gap is not None and same_epoch_gap.reason == "out_of_buffer"
    assert book.stats.gaps == 2


def test_alert_gap_merges_history_and_held_live_alerts_once_in_order() -> None:
    book = SubscriptionBook()
    state = book.add("alerts", "*")
    book.subscribe_request(state, "r1")
    book.on_subscribe_ack(ack(state.topic, None), "E1")
    for seq, alert_id in ((1, 1), (2, 2)):
        assert book.accept(Alert(topic="alerts:*", seq=seq, data=alert_payload(alert_id)), "E1")
    assert book.subscribe_request(state, "r2").resume_from == 2
    gap = book.on_subscribe_ack(ack(state.topic, False), "E2")
    assert gap is not None and state.filling == []
    # Live alerts of the new epoch arrive while the history request is in flight: held.
    live = [Alert(topic="alerts:*", seq=s, data=alert_payload(a)) for s, a in ((1, 5), (2, 6))]
    assert not any(book.accept(a, "E2") for a in live)
    assert state.fill_since == 2
    history = [alert_payload(i) for i in (2, 3, 4, 5)]
    out, filled = book.complete_fill("alerts:*", history)
    assert [a.data.alert_id for a in out] == [3, 4, 5, 6]
    assert filled == 2  # 3 and 4 came only from the history
    assert [a.seq for a in out] == [0, 0, 1, 2]  # history items carry seq 0
    assert state.filling is None
    assert book.accept(Alert(topic="alerts:*", seq=3, data=alert_payload(7)), "E2")


def test_alerts_fired_before_the_subscription_are_not_replayed() -> None:
    book = SubscriptionBook()
    state = book.add("alerts", "AAPL")
    subscribed = ack(state.topic, None)
    book.on_subscribe_ack(subscribed, "E1")
    before = subscribed.timestamp - timedelta(seconds=5)
    after = subscribed.timestamp + timedelta(seconds=1)
    # No alert seen yet: the resume asks for the epoch's whole buffer (resume_from=0).
    request = book.subscribe_request(state, "r2")
    assert (request.resume_from, request.epoch) == (0, "E1")
    old = Alert(topic=state.topic, seq=1, timestamp=before, data=alert_payload(1, when=after))
    new = Alert(topic=state.topic, seq=2, timestamp=after, data=alert_payload(2, when=before))
    assert not book.accept(old, "E1")  # published before the subscription: not replayed
    assert book.accept(new, "E1")  # published after it (whatever its data.timestamp says)
    # History fill filters by symbol for a per-symbol topic.
    book.on_subscribe_ack(ack(state.topic, False), "E1")
    out, _ = book.complete_fill(state.topic, [alert_payload(3, "MSFT"), alert_payload(4)])
    assert [a.data.alert_id for a in out] == [4]


def test_close_reason_parsing() -> None:
    info = CloseInfo.parse(1001, '{"reason":"SERVER_SHUTDOWN","retry_after":2.5}')
    assert (info.code, info.reason, info.retry_after) == (1001, "SERVER_SHUTDOWN", 2.5)
    assert CloseInfo.parse(1013, "slow").retry_after is None
    assert CloseInfo.parse(1008, '{"retry_after":-1}').retry_after is None
    assert CloseInfo.parse(None, None).reason is None
