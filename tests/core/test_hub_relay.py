"""Hub.relay / adopt_epoch / backfill: seqs and the epoch assigned by the feed (Redis bus)."""

from __future__ import annotations

import json

from jupyter_rtstream.core.codec import encode
from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.core.session import ServerSession

from ._samples import alert, market_data

MD = "market_data:AAPL"


def _text(seq: int, price: float = 100.0) -> str:
    message = market_data("AAPL", price)
    message.seq = seq
    return encode(message)


def _relayed(hub: Hub, seqs: range | list[int]) -> None:
    for seq in seqs:
        hub.relay(MD, seq, _text(seq))


def _seqs(texts: list[str]) -> list[int]:
    return [json.loads(t)["seq"] for t in texts]


def test_relay_keeps_the_feeds_seq_and_drops_duplicates() -> None:
    hub = Hub(epoch="local")
    assert hub.adopt_epoch("F1") is True
    outbox = hub.connect("c")
    hub.subscribe("c", MD)
    _relayed(hub, range(41, 45))
    frame, gap = hub.relay(MD, 43, _text(43))  # read twice (a reconnect): not fanned out
    assert frame is None and gap is False
    assert _seqs(outbox.drain()) == [41, 42, 43, 44]
    assert hub.last_seq(MD) == 44 and hub.epoch == "F1"


def test_relay_gap_restarts_the_buffer_so_resume_never_lies() -> None:
    hub = Hub(epoch="F1")
    hub.adopt_epoch("F1")
    _relayed(hub, range(1, 6))
    frame, gap = hub.relay(MD, 9, _text(9))
    assert frame is not None and gap is True
    hub.connect("c")
    assert hub.subscribe("c", MD, resume_from=3, epoch="F1").recovered is False
    hub.connect("d")
    result = hub.subscribe("d", MD, resume_from=8, epoch="F1")
    assert result.recovered is True and result.frames[0].seq == 9


def test_backfill_extends_the_buffer_backwards_contiguously() -> None:
    hub = Hub(epoch="F1")
    hub.adopt_epoch("F1")
    _relayed(hub, range(50, 56))
    assert not hub.covers(MD, 10, "F1")
    assert hub.backfill(MD, [(s, _text(s)) for s in range(20, 48)]) == 0  # not adjacent
    assert hub.backfill(MD, [(s, _text(s)) for s in range(11, 50)]) == 39
    assert hub.covers(MD, 10, "F1")
    hub.connect("c")
    result = hub.subscribe("c", MD, resume_from=10, epoch="F1")
    assert result.recovered is True
    assert [f.seq for f in result.frames] == list(range(11, 56))


def test_backfill_respects_the_hard_limit() -> None:
    hub = Hub(epoch="F1", replay_messages=5, replay_hard_limit=8)
    hub.adopt_epoch("F1")
    _relayed(hub, range(100, 103))
    assert hub.backfill(MD, [(s, _text(s)) for s in range(1, 100)]) == 5
    assert [e[0] for e in hub.topics[MD].buffer] == list(range(95, 103))


def test_backfill_into_an_empty_buffer_ends_at_the_topic_seq() -> None:
    hub = Hub(epoch="F1")
    hub.adopt_epoch("F1")
    _relayed(hub, [7])
    hub.topics[MD].buffer.clear()
    assert hub.backfill(MD, [(s, _text(s)) for s in range(3, 7)]) == 0  # must end at seq 7
    assert hub.backfill(MD, [(s, _text(s)) for s in range(3, 8)]) == 5
    assert hub.covers(MD, 2, "F1")


def test_a_new_feed_epoch_restarts_relayed_topics_only() -> None:
    hub = Hub(epoch="F1")
    hub.adopt_epoch("F1")
    _relayed(hub, range(1, 4))
    hub.publish(alert("AAPL"))
    assert hub.adopt_epoch("F1") is False
    assert hub.adopt_epoch("F2") is True
    assert hub.last_seq(MD) == 0 and hub.latest(MD) is None
    assert hub.last_seq("alerts:AAPL") == 1
    _relayed(hub, [1])
    assert hub.last_seq(MD) == 1


def test_locally_numbered_topics_never_resume_on_a_relaying_hub() -> None:
    hub = Hub(epoch="F1")
    hub.adopt_epoch("F1")
    hub.publish(alert("AAPL"))
    hub.connect("c")
    # the same epoch on another server means nothing for its own alert seqs
    assert hub.subscribe("c", "alerts:AAPL", resume_from=0, epoch="F1").recovered is False


def test_connection_status_carries_the_feed_state() -> None:
    hub = Hub(epoch="F1")
    session = ServerSession(hub, InstrumentRegistry(["AAPL"]), "c")
    assert session.status().data.feed_state == "ok"
    hub.feed_state = "degraded"
    session.heartbeat()
    assert json.loads(session.data_to_send()[-1])["data"]["feed_state"] == "degraded"
