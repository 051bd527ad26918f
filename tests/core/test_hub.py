"""Hub and Outbox: seq, serialize-once fan-out, replay retention, resume, conflation, 1013."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel

from jupyter_rtstream.core.codec import encode
from jupyter_rtstream.core.errors import CloseCode
from jupyter_rtstream.core.hub import CONFLATABLE_KINDS, Hub
from jupyter_rtstream.core.outbox import Frame, Outbox

from ._samples import FakeClock, alert, market_data

MD = "market_data:AAPL"
MD2 = "market_data:MSFT"
AL = "alerts:AAPL"
ALL_ALERTS = "alerts:*"


def _hub(**kwargs: object) -> Hub:
    kwargs.setdefault("epoch", "E1")
    return Hub(**kwargs)  # type: ignore[arg-type]


def _publish_md(hub: Hub, n: int, symbol: str = "AAPL") -> list[Frame]:
    return [hub.publish(market_data(symbol, 100.0 + i)) for i in range(n)]


def _seqs(texts: list[str]) -> list[int]:
    return [json.loads(t)["seq"] for t in texts]


# --------------------------------------------------------------------------- seq and fan-out


def test_seq_increments_by_one_per_topic() -> None:
    hub = _hub()
    a = _publish_md(hub, 3, "AAPL")
    m = _publish_md(hub, 2, "MSFT")
    a += _publish_md(hub, 2, "AAPL")
    assert [f.seq for f in a] == [1, 2, 3, 4, 5]
    assert [f.seq for f in m] == [1, 2]
    assert [json.loads(f.text)["seq"] for f in a] == [1, 2, 3, 4, 5]
    assert all(json.loads(f.text)["topic"] == MD for f in a)
    assert hub.topics[MD].seq == 5
    assert hub.stats()["published"] == 7


def test_publish_serializes_once_and_shares_the_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[BaseModel] = []

    def counting_encode(message: BaseModel) -> str:
        calls.append(message)
        return encode(message)

    monkeypatch.setattr("jupyter_rtstream.core.hub.encode", counting_encode)
    hub = _hub()
    boxes = [hub.connect(f"c{i}") for i in range(5)]
    for i in range(5):
        hub.subscribe(f"c{i}", MD)
    frame = hub.publish(market_data())
    assert len(calls) == 1
    queued = [box.drain_frames() for box in boxes]
    for frames in queued:
        assert len(frames) == 1
        assert frames[0] is frame
    assert hub.topics[MD].last is frame
    # The replay buffer keeps plain (seq, created, text) tuples (no GC traversal).
    assert hub.topics[MD].buffer[-1] == (frame.seq, frame.created, frame.text)
    assert hub.latest(MD) is frame
    assert hub.stats()["fanned_out"] == 5


def test_frame_metadata() -> None:
    clock = FakeClock(50.0)
    hub = _hub(clock=clock)
    md = hub.publish(market_data())
    al = hub.publish(alert())
    assert (md.topic, md.seq, md.created, md.conflatable) == (MD, 1, 50.0, True)
    assert (al.topic, al.seq, al.conflatable) == (AL, 1, False)
    assert md.nbytes == len(md.text)
    assert {"market_data", "technical_indicators", "analytics"} == CONFLATABLE_KINDS


def test_regression_frame_nbytes_counts_utf8_bytes() -> None:
    """Regression test.

    Fixed (core/hub.py, `Frame.__post_init__`: ``self.nbytes = len(self.text)``): the outbox
    byte bound (``max_bytes``, docs/protocol.md "client outbox 1 MiB") is enforced on *characters*.
    Encoded messages are not ASCII-escaped, so a frame with non-ASCII text (alert rule
    names/messages, symbols) is under-counted up to 4x. Expected: ``nbytes`` is the UTF-8
    length of ``text``."""
    frame = _hub().publish(alert(message="Kurs über 100 € 📈"))
    assert "€" in frame.text  # serialized as raw UTF-8, not \u escapes
    assert frame.nbytes == len(frame.text.encode("utf-8"))


def test_publish_does_not_reach_unsubscribed_or_other_topics() -> None:
    hub = _hub()
    a = hub.connect("a")
    b = hub.connect("b")
    hub.subscribe("a", MD)
    hub.subscribe("b", MD2)
    _publish_md(hub, 2, "AAPL")
    assert _seqs(a.drain()) == [1, 2]
    assert b.drain() == []


# --------------------------------------------------------------------------- replay retention


def test_replay_buffer_keeps_at_least_n_messages() -> None:
    clock = FakeClock()
    hub = _hub(replay_messages=3, replay_seconds=10.0, clock=clock)
    for _ in range(6):
        hub.publish(market_data())
        clock.advance(60.0)  # every message is older than replay_seconds at the next publish
    assert [seq for seq, _, _ in hub.topics[MD].buffer] == [4, 5, 6]


def test_replay_buffer_keeps_everything_younger_than_s_seconds() -> None:
    clock = FakeClock()
    hub = _hub(replay_messages=3, replay_seconds=10.0, replay_hard_limit=1000, clock=clock)
    for _ in range(20):
        hub.publish(market_data())
        clock.advance(0.5)  # 20 messages in 10 s: all within the window
    assert len(hub.topics[MD].buffer) == 20
    # Exactly replay_seconds old is still kept; older goes, but never below N.
    clock.now = hub.topics[MD].buffer[0][1] + 10.0
    hub.publish(market_data())
    assert hub.topics[MD].buffer[0][0] == 1
    clock.advance(0.25)
    hub.publish(market_data())
    assert hub.topics[MD].buffer[0][0] == 2
    clock.advance(1000.0)
    hub.publish(market_data())
    assert [seq for seq, _, _ in hub.topics[MD].buffer] == [21, 22, 23]


def test_replay_buffer_hard_limit() -> None:
    clock = FakeClock()
    hub = _hub(replay_messages=3, replay_seconds=3600.0, replay_hard_limit=8, clock=clock)
    _publish_md(hub, 50)
    assert [seq for seq, _, _ in hub.topics[MD].buffer] == list(range(43, 51))
    # The hard limit never goes below replay_messages.
    hub2 = _hub(replay_messages=5, replay_hard_limit=2, clock=clock)
    assert hub2.replay_hard_limit == 5
    _publish_md(hub2, 9)
    assert len(hub2.topics[MD].buffer) == 5


# --------------------------------------------------------------------------- resume


def _resume_hub() -> Hub:
    hub = _hub(replay_messages=5, replay_seconds=0.0, replay_hard_limit=5, clock=FakeClock())
    _publish_md(hub, 12)  # buffer holds seq 8..12
    for i in range(12):
        hub.publish(alert(alert_id=i), also=[ALL_ALERTS])
    return hub


def test_plain_subscribe_gets_latest_snapshot() -> None:
    hub = _resume_hub()
    hub.connect("c")
    result = hub.subscribe("c", MD)
    assert result.recovered is None
    assert result.snapshot
    assert result.frames == [hub.latest(MD)]
    assert result.frames[0].seq == 12


@pytest.mark.parametrize("resume_from", [7, 8, 10, 11])
def test_resume_replays_exactly_the_gap(resume_from: int) -> None:
    hub = _resume_hub()
    hub.connect("c")
    result = hub.subscribe("c", MD, resume_from=resume_from, epoch="E1")
    assert result.recovered is True
    assert not result.snapshot
    assert [f.seq for f in result.frames] == list(range(resume_from + 1, 13))
    assert result.replayed == len(result.frames)
    buffered = {seq: text for seq, _, text in hub.topics[MD].buffer}
    assert all(f.text == buffered[f.seq] for f in result.frames)


def test_resume_from_latest_recovers_nothing() -> None:
    hub = _resume_hub()
    hub.connect("c")
    for name in (MD, AL, ALL_ALERTS):
        result = hub.subscribe("c", name, resume_from=12, epoch="E1")
        assert (result.recovered, result.frames, result.replayed) == (True, [], 0)
    # A brand new topic: seq 0 is "latest".
    result = hub.subscribe("c", "market_data:NEW", resume_from=0, epoch="E1")
    assert (result.recovered, result.frames) == (True, [])


@pytest.mark.parametrize(
    ("resume_from", "epoch"),
    [
        (13, "E1"),  # from the future
        (10_000, "E1"),
        (10, "E0"),  # another epoch
        (10, None),
        (6, "E1"),  # older than the buffer (8..12 kept; 7 is lost)
        (0, "E1"),
    ],
)
def test_unrecoverable_resume_gives_snapshot_for_market_data(
    resume_from: int, epoch: str | None
) -> None:
    hub = _resume_hub()
    hub.connect("c")
    result = hub.subscribe("c", MD, resume_from=resume_from, epoch=epoch)
    assert result.recovered is False
    assert result.snapshot
    assert result.frames == [hub.latest(MD)]
    assert result.replayed == 0


@pytest.mark.parametrize(("resume_from", "epoch"), [(13, "E1"), (10, "E0"), (6, "E1"), (0, "E1")])
def test_unrecoverable_resume_gives_no_snapshot_for_alerts(
    resume_from: int, epoch: str | None
) -> None:
    hub = _resume_hub()
    hub.connect("c")
    for name in (AL, ALL_ALERTS):
        result = hub.subscribe("c", name, resume_from=resume_from, epoch=epoch)
        assert result.recovered is False
        assert not result.snapshot
        assert result.frames == []
    # ...and a plain alerts subscribe has no snapshot either
    assert hub.subscribe("c", AL).frames == []


def test_resume_then_live_has_no_gap_and_no_duplicate() -> None:
    hub = _hub()
    box = hub.connect("c")
    hub.subscribe("c", AL)
    for i in range(3):
        hub.publish(alert(alert_id=i))
    seen = _seqs(box.drain())
    hub.publish(alert(alert_id=3))  # queued, then the connection drops
    hub.disconnect("c")
    hub.publish(alert(alert_id=4))  # while away
    box = hub.connect("c")
    result = hub.subscribe("c", AL, resume_from=seen[-1], epoch=hub.epoch)
    assert result.recovered is True
    seen += [f.seq for f in result.frames]
    hub.publish(alert(alert_id=5))
    seen += _seqs(box.drain())
    assert seen == [1, 2, 3, 4, 5, 6]


def test_also_topic_gets_its_own_seq() -> None:
    hub = _hub()
    star = hub.connect("star")
    one = hub.connect("one")
    hub.subscribe("star", ALL_ALERTS)
    hub.subscribe("one", "alerts:MSFT")
    hub.publish(alert("AAPL", 1), also=[ALL_ALERTS])
    hub.publish(alert("MSFT", 2), also=[ALL_ALERTS])
    hub.publish(alert("MSFT", 3), also=[ALL_ALERTS])
    star_docs = [json.loads(t) for t in star.drain()]
    assert [(d["topic"], d["seq"]) for d in star_docs] == [
        (ALL_ALERTS, 1),
        (ALL_ALERTS, 2),
        (ALL_ALERTS, 3),
    ]
    assert [d["data"]["alert_id"] for d in star_docs] == [1, 2, 3]
    one_docs = [json.loads(t) for t in one.drain()]
    assert [(d["topic"], d["seq"]) for d in one_docs] == [("alerts:MSFT", 1), ("alerts:MSFT", 2)]
    assert hub.topics[AL].seq == 1
    assert [seq for seq, _, _ in hub.topics[ALL_ALERTS].buffer] == [1, 2, 3]


def test_unsubscribe_stops_delivery() -> None:
    hub = _hub()
    box = hub.connect("c")
    hub.subscribe("c", MD)
    _publish_md(hub, 2)
    assert hub.unsubscribe("c", MD) is True
    assert hub.unsubscribe("c", MD) is False
    assert hub.unsubscribe("nobody", MD) is False
    _publish_md(hub, 3)
    assert _seqs(box.drain()) == [1, 2]  # queued before the unsubscribe only
    _publish_md(hub, 1)
    assert box.drain() == []
    assert "c" not in hub.topics[MD].subscribers
    assert MD not in box.subscriptions


def test_disconnect_removes_every_subscription() -> None:
    hub = _hub()
    hub.connect("c")
    hub.subscribe("c", MD)
    hub.subscribe("c", AL)
    hub.disconnect("c")
    hub.disconnect("c")  # idempotent
    assert "c" not in hub.clients
    assert not hub.topics[MD].subscribers
    assert not hub.topics[AL].subscribers
    _publish_md(hub, 1)
    assert hub.stats()["clients"] == 0


# --------------------------------------------------------------------------- slow consumers


def test_lagging_outbox_conflates_latest_wins() -> None:
    hub = _hub(outbox_max_messages=8)  # lagging above 2 queued messages
    box = hub.connect("slow")
    hub.subscribe("slow", MD)
    hub.subscribe("slow", MD2)
    frames = _publish_md(hub, 3, "AAPL")  # 3rd: queue of 2 is not > 2, appended
    assert len(box) == 3
    assert box.lagging
    m = _publish_md(hub, 1, "MSFT")  # no queued MSFT frame: appended
    later = _publish_md(hub, 4, "AAPL")  # each replaces the queued AAPL frame
    assert len(box) == 4
    assert box.conflated == 4
    assert box.conflated_by_topic == {MD: 4}
    drained = box.drain_frames()
    assert drained == [frames[0], frames[1], later[-1], m[0]]
    assert [f.seq for f in drained if f.topic == MD] == [1, 2, 7]
    assert box.nbytes == 0
    assert hub.conflated == 4
    assert hub.stats()["conflated"] == 4
    hub.disconnect("slow")
    assert hub.stats()["conflated"] == 0  # connected clients only
    assert hub.stats()["conflated_total"] == 4  # since start, disconnected clients included


def test_conflation_keeps_byte_count_exact() -> None:
    box = Outbox("c", max_bytes=40, max_messages=1000)  # lagging above 10 bytes
    box.push(Frame("x" * 20, MD, 1, conflatable=True))
    assert box.lagging
    box.push(Frame("y" * 7, MD, 2, conflatable=True))  # replaces x: 7 bytes queued
    assert (len(box), box.nbytes, box.conflated) == (1, 7, 1)
    assert not box.lagging
    box.push(Frame("z" * 30, MD, 3, conflatable=True))  # not lagging: appended
    assert (len(box), box.nbytes, box.conflated) == (2, 37, 1)
    assert box.drain() == ["y" * 7, "z" * 30]


def test_non_lagging_outbox_never_conflates() -> None:
    hub = _hub(outbox_max_messages=400)
    box = hub.connect("fast")
    hub.subscribe("fast", MD)
    for _ in range(10):
        _publish_md(hub, 50)
        assert not box.lagging
        box.drain()
    assert box.conflated == 0
    assert box.delivered == 500


def test_byte_lag_triggers_conflation() -> None:
    md_size = _hub().publish(market_data()).nbytes
    hub = _hub(outbox_max_bytes=md_size * 4, outbox_max_messages=10_000)  # lag > 1 frame
    box = hub.connect("c")
    hub.subscribe("c", MD)
    _publish_md(hub, 5)
    assert box.conflated >= 3
    assert len(box) == 2


def test_alerts_are_never_conflated() -> None:
    hub = _hub(outbox_max_messages=40)
    box = hub.connect("c")
    hub.subscribe("c", AL)
    for i in range(40):
        hub.publish(alert(alert_id=i))
    assert box.lagging
    assert box.conflated == 0
    assert box.close_request is None
    assert _seqs(box.drain()) == list(range(1, 41))


def test_alert_that_does_not_fit_closes_1013_and_discards() -> None:
    hub = _hub(outbox_max_messages=4)
    box = hub.connect("c")
    hub.subscribe("c", AL)
    for i in range(4):
        hub.publish(alert(alert_id=i))
    assert box.close_request is None
    hub.publish(alert(alert_id=5))
    assert box.close_request is not None
    assert box.close_request.code == CloseCode.TRY_AGAIN_LATER == 1013
    assert json.loads(box.close_request.reason) == {"reason": "SLOW_CONSUMER", "retry_after": 1.0}
    assert len(box) == 0
    assert box.nbytes == 0
    hub.publish(alert(alert_id=6))
    assert box.drain() == []  # nothing more is queued once closing
    # Resume on a new connection replays what was discarded, when it fits in half the
    # outbox; a larger gap is "not recovered" (the client reads the alert history instead).
    box = hub.connect("c")
    result = hub.subscribe("c", AL, resume_from=4, epoch=hub.epoch)
    assert result.recovered is True
    assert [f.seq for f in result.frames] == [5, 6]
    hub.disconnect("c")
    box = hub.connect("c")
    result = hub.subscribe("c", AL, resume_from=0, epoch=hub.epoch)
    assert result.recovered is False and result.frames == []


def test_alert_over_the_byte_bound_closes_1013() -> None:
    size = len(_hub().publish(alert()).text)
    hub = _hub(outbox_max_bytes=size * 2 + size // 2)
    box = hub.connect("c")
    hub.subscribe("c", AL)
    hub.publish(alert())
    hub.publish(alert())
    assert box.close_request is None
    hub.publish(alert())
    assert box.close_request is not None
    assert box.close_request.code == 1013


def test_control_frames_are_must_deliver() -> None:
    box = Outbox("c", max_bytes=1 << 20, max_messages=2)
    box.push_text("a")
    box.push_text("b")
    assert box.drain() == ["a", "b"]
    for text in "abc":
        box.push_text(text)
    assert box.close_request is not None
    assert box.close_request.code == 1013


def test_forget_topic_stops_conflating_into_older_frames() -> None:
    box = Outbox("c", max_bytes=1 << 20, max_messages=4)  # lagging above 1 message
    box.push(Frame("1", MD, 1, conflatable=True))
    box.push(Frame("2", MD, 2, conflatable=True))
    box.push(Frame("3", MD, 3, conflatable=True))  # lagging: replaces "2"
    assert (box.drain_frames()[-1].seq, box.conflated) == (3, 1)
    box.push(Frame("4", MD, 4, conflatable=True))
    box.push(Frame("5", MD, 5, conflatable=True))
    box.forget_topic(MD)  # what an unsubscribe / resubscribe does
    box.push(Frame("6", MD, 6, conflatable=True))  # lagging, but nothing to replace
    assert box.conflated == 1
    assert box.drain() == ["4", "5", "6"]


def test_request_close_without_discard_keeps_the_queue() -> None:
    woke = []
    box = Outbox("c", max_bytes=100, max_messages=100, waker=lambda: woke.append(1))
    box.push_text("error frame")
    box.request_close(1009, "too big")
    box.request_close(1000, "ignored: first close wins")
    assert box.close_request is not None
    assert (box.close_request.code, box.close_request.reason) == (1009, "too big")
    assert box.drain() == ["error frame"]
    box.push_text("after close")
    assert box.drain() == []
    assert len(woke) == 2  # the first push and the (forced) close


def test_waker_is_called_once_per_empty_to_non_empty_transition() -> None:
    woke: list[int] = []
    hub = _hub(outbox_max_messages=8)
    box = hub.connect("c", waker=lambda: woke.append(1))
    hub.subscribe("c", MD)
    hub.subscribe("c", AL)
    _publish_md(hub, 6)  # includes conflated pushes
    hub.publish(alert())
    assert len(woke) == 1
    box.drain()
    assert box.drain() == []  # draining an empty outbox does not wake
    assert len(woke) == 1
    hub.publish(alert())
    assert len(woke) == 2
    hub.publish(alert())
    assert len(woke) == 2
    box.drain_frames()
    _publish_md(hub, 1)
    assert len(woke) == 3


def test_outbox_lag_thresholds() -> None:
    box = Outbox("c", max_bytes=1000, max_messages=10)
    assert (box.lag_bytes, box.lag_messages) == (250, 2)
    tiny = Outbox("c", max_bytes=3, max_messages=2)
    assert tiny.lag_messages == 1


def test_regression_alert_replay_larger_than_the_outbox_resumes() -> None:
    """Regression test.

    Fixed (design-level; core/hub.py `Hub.subscribe` + `Outbox.push`): a recovered resume
    returns *all* buffered alerts after ``resume_from`` and the session pushes them into the
    new, equally bounded outbox in one go. When the gap holds more must-deliver frames than
    the outbox bound, the push closes the fresh connection with 1013 before anything is
    written, and every later resume (same ``resume_from``) does exactly the same: the client
    loops on 1013 forever although the hub still has every message (``recovered: true`` each
    time). With the defaults this needs > ~3,000 alerts (1 MiB / ~340 B) within the alert
    topic's retention window (e.g. ``alerts:*`` during an alert storm).
    Expected: a client that drains promptly eventually catches up (e.g. replay not bounded
    by the live-lag bound, paced replay, or ``recovered: false`` when the gap cannot fit)."""
    hub = _hub(outbox_max_messages=4)
    for i in range(10):
        hub.publish(alert(alert_id=i))
    last_seen = 0
    outcome = "looping on 1013"
    for _attempt in range(5):
        box = hub.connect("c")
        result = hub.subscribe("c", AL, resume_from=last_seen, epoch=hub.epoch)
        box.push_text('{"message_type":"ack"}')  # the session's ack comes first
        for frame in result.frames:
            box.push(frame)
        seqs = [f.seq for f in box.drain_frames() if f.topic == AL]
        last_seen = max([last_seen, *seqs])
        if result.recovered is False:
            outcome = "gave up (recovered: false)"
            break
        if box.close_request is None and last_seen == hub.topics[AL].seq:
            outcome = "caught up"
            break
        hub.disconnect("c")
    assert outcome in {"caught up", "gave up (recovered: false)"}, outcome


def test_status_reports_topics_clients_and_counters_as_plain_values() -> None:
    hub = _hub()
    hub.connect("c1")
    hub.subscribe("c1", "market_data:AAPL")
    _publish_md(hub, 3)
    status = hub.status()
    json.dumps(status)  # JSON-ready: the status API writes it as is
    assert status["epoch"] == hub.epoch
    assert status["topics"] == [
        {"topic": "market_data:AAPL", "seq": 3, "subscribers": 1, "buffered": 3}
    ]
    assert status["clients"] == {
        "c1": {
            "subscriptions": ["market_data:AAPL"],
            "conflated": 0,
            "queued_bytes": sum(len(t) for t in hub.clients["c1"].drain()),
            "delivered": 0,
        }
    }
    assert status["counters"] == {
        "published": 3,
        "fanned_out": 3,
        "clients": 1,
        "topics": 1,
        "conflated": 0,
        "conflated_total": 0,
        "queued_bytes": status["clients"]["c1"]["queued_bytes"],
    }
