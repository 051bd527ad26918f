"""``Hub.seed`` and ``Hub.history``: the seeded history, then the replay buffer, by seq or
by time, bounded by ``limit``; a trimmed stretch shows as a seq jump."""

from __future__ import annotations

import json
from datetime import timedelta

from jupyter_rtstream.core.hub import Hub
from jupyter_rtstream.core.messages import MarketData

from ._samples import T0, FakeClock, market_data

MD = "market_data:AAPL"


def _at(i: int) -> MarketData:
    message = market_data("AAPL", 100.0 + i)
    message.timestamp = T0 + timedelta(seconds=i)
    return message


def _seqs(texts: list[str]) -> list[int]:
    return [json.loads(t)["seq"] for t in texts]


def _hub_with_hole() -> tuple[Hub, FakeClock]:
    """Seeded seqs 1-10 (t=0..9 s), live 11-40 (t=10..39 s) of which the buffer keeps 31-40."""
    clock = FakeClock()
    hub = Hub(epoch="E", replay_messages=10, replay_seconds=5.0, clock=clock)
    for i in range(10):
        assert hub.seed(_at(i)) == i + 1
    for i in range(10, 40):
        clock.advance(1.0)
        hub.publish(_at(i))
    hub.trim()
    return hub, clock


def test_seeded_messages_take_seqs_but_are_not_replayed_or_sent() -> None:
    hub = Hub(epoch="E")
    box = hub.connect("c")
    hub.subscribe("c", MD)
    for i in range(3):
        hub.seed(_at(i))
    assert len(box) == 0 and not hub.topics[MD].buffer, "seeded: sent to no one"
    latest = hub.latest(MD)  # the newest seeded message is the snapshot until a live one
    assert latest is not None and latest.seq == 3
    frame = hub.publish(_at(3))
    assert frame.seq == 4 and hub.last_seq(MD) == 4
    assert _seqs(hub.history(MD)) == [1, 2, 3, 4]
    # A resume from a seeded seq is not recovered (seeded history is not replayable).
    assert hub.subscribe("c", MD, resume_from=1, epoch="E").recovered is False


def test_history_by_seq_spans_the_hole_between_seeded_and_buffered() -> None:
    hub, _ = _hub_with_hole()
    assert _seqs(hub.history(MD)) == [*range(1, 11), *range(31, 41)]
    assert _seqs(hub.history(MD, since_seq=0, limit=3)) == [1, 2, 3]
    assert _seqs(hub.history(MD, since_seq=8, limit=4)) == [9, 10, 31, 32]
    assert _seqs(hub.history(MD, since_seq=15, limit=2)) == [31, 32], "inside the hole"
    assert _seqs(hub.history(MD, since_seq=35)) == [36, 37, 38, 39, 40]
    assert hub.history(MD, since_seq=40) == [] and hub.history(MD, since_seq=10**9) == []
    assert hub.history("market_data:NOPE") == [] and hub.last_seq("market_data:NOPE") == 0


def test_history_by_time_bisects_on_the_message_timestamp() -> None:
    hub, _ = _hub_with_hole()
    assert _seqs(hub.history(MD, since_time=T0 + timedelta(seconds=7))) == [
        8,
        9,
        10,
        *range(31, 41),
    ]
    assert _seqs(hub.history(MD, since_time=T0 + timedelta(seconds=9.5), limit=2)) == [31, 32]
    assert _seqs(hub.history(MD, since_time=T0 + timedelta(seconds=35))) == [36, 37, 38, 39, 40]
    assert hub.history(MD, since_time=T0 + timedelta(seconds=40)) == []
    assert len(hub.history(MD, since_time=T0 - timedelta(days=1))) == 20
    # Both bounds: the later one wins.
    assert _seqs(hub.history(MD, since_seq=33, since_time=T0, limit=2)) == [34, 35]
    assert _seqs(hub.history(MD, since_seq=2, since_time=T0 + timedelta(seconds=33))) == [
        *range(34, 41)
    ]


def test_release_frees_the_seeded_history_of_an_idle_topic() -> None:
    hub, _ = _hub_with_hole()
    assert hub.release(MD)
    assert hub.history(MD) == [] and hub.last_seq(MD) == 40, "the seq goes on"
    assert hub.seed(_at(50)) == 41


def test_seeded_history_is_capped_at_the_hard_limit() -> None:
    hub = Hub(epoch="E", replay_messages=5, replay_hard_limit=5)
    for i in range(8):
        hub.seed(_at(i))
    assert _seqs(hub.history(MD)) == [4, 5, 6, 7, 8]
