"""What the hub tells a publisher about watching (issue 19): ``wants`` while subscribed and
for ``replay_seconds`` after, ``on_watch`` for a topic's first subscriber when it is not
watched, ``advance`` past unbuilt messages (no resume spans them), ``watched`` by kind."""

from __future__ import annotations

from jupyter_rtstream.core.hub import Hub

from ._samples import FakeClock, market_data

MD = "market_data:AAPL"


def test_wants_while_subscribed_and_for_the_replay_window_after() -> None:
    clock = FakeClock()
    hub = Hub(epoch="E", replay_seconds=60.0, clock=clock)
    assert not hub.wants(MD), "never subscribed"
    hub.connect("a")
    hub.connect("b")
    hub.subscribe("a", MD)
    hub.subscribe("b", MD)
    assert hub.wants(MD)
    hub.unsubscribe("a", MD)
    clock.advance(1000.0)
    assert hub.wants(MD), "b still subscribed"
    hub.disconnect("b")
    clock.advance(59.0)
    assert hub.wants(MD), "within the replay window after the last one left"
    assert hub.watched("market_data") == [MD] and hub.watched("analytics") == []
    clock.advance(2.0)
    assert not hub.wants(MD) and hub.watched() == []


def test_on_watch_only_for_a_topic_nobody_watches() -> None:
    clock = FakeClock()
    hub = Hub(epoch="E", replay_seconds=60.0, clock=clock)
    called: list[str] = []
    hub.on_watch = called.append
    hub.connect("a")
    hub.connect("b")
    hub.subscribe("a", MD)
    hub.subscribe("b", MD)
    assert called == [MD], "the second subscriber finds it watched"
    hub.disconnect("a")
    hub.disconnect("b")
    clock.advance(30.0)
    hub.connect("a")
    hub.subscribe("a", MD)
    assert called == [MD], "within the window: still built, nothing to do"
    hub.disconnect("a")
    clock.advance(61.0)
    hub.relay("market_data:MSFT", 1, market_data("MSFT", 1.0).model_dump_json())
    hub.connect("c")
    hub.subscribe("c", "market_data:MSFT")
    hub.subscribe("c", MD)
    assert called == [MD, MD], "not for a relayed topic"


def test_advance_leaves_a_hole_no_resume_spans() -> None:
    hub = Hub(epoch="E")
    for i in range(3):
        hub.publish(market_data("AAPL", 100.0 + i))
    hub.advance(MD, 3)  # not past the next seq (4): nothing changes
    assert hub.publish(market_data("AAPL", 103.0)).seq == 4
    hub.connect("c")
    assert hub.subscribe("c", MD, resume_from=2, epoch="E").recovered is True
    hub.advance(MD, 7)  # messages 5 and 6 were never built
    assert hub.publish(market_data("AAPL", 107.0)).seq == 7
    hub.connect("d")
    resumed = hub.subscribe("d", MD, resume_from=4, epoch="E")
    assert resumed.recovered is False and [f.seq for f in resumed.frames] == [7]
