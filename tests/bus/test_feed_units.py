"""The feed service's pieces without Redis: bounded buffering, CLI flags, the key layout."""

from __future__ import annotations

import asyncio

import pytest

from jupyter_rtstream import feed
from jupyter_rtstream.core.instruments import InstrumentRegistry
from jupyter_rtstream.core.outbox import Frame
from jupyter_rtstream.server.bus import _tick
from jupyter_rtstream.server.bus_feed import RedisSink, TappedHub
from jupyter_rtstream.server.bus_keys import entry_id, full_jitter, seq_of, stream_key, topic_of
from jupyter_rtstream.server.synthetic import SyntheticPublisher

from ..core._samples import market_data


def test_the_sink_is_bounded_and_counts_what_it_drops() -> None:
    async def scenario() -> RedisSink:
        sink = RedisSink("redis://127.0.0.1:1/0", "E", max_buffered=3)
        for seq in range(1, 6):
            sink.append(Frame("{}", "market_data:AAPL", seq))
        sink.append(Frame("{}"))  # a control frame: not for the bus
        return sink

    sink = asyncio.run(scenario())
    assert [e[1] for e in sink.queue] == [3, 4, 5]
    assert sink.dropped == 2


def test_the_tapped_hub_numbers_and_hands_every_frame_over() -> None:
    frames: list[Frame] = []
    hub = TappedHub(frames.append, epoch="E")
    hub.publish(market_data("AAPL"))
    hub.publish(market_data("AAPL"))
    assert [(f.topic, f.seq) for f in frames] == [("market_data:AAPL", 1), ("market_data:AAPL", 2)]
    assert len(hub.topics["market_data:AAPL"].buffer) == 1  # no clients: minimal buffer


def test_the_tapped_hub_hands_over_prebuilt_frames_too() -> None:
    """The synthetic feed publishes prebuilt frames (``Hub.publish_parts``), not models."""
    frames: list[Frame] = []
    hub = TappedHub(frames.append, epoch="E")
    publisher = SyntheticPublisher(hub, InstrumentRegistry(), 10.0, 2)
    for _ in range(4):
        publisher.publish_one()
    assert [(f.topic, f.seq) for f in frames] == [
        ("market_data:BENCH0", 1),
        ("market_data:BENCH1", 1),
        ("market_data:BENCH0", 2),
        ("market_data:BENCH1", 2),
    ]


def test_cli_accepts_the_jupyter_subcommand_form() -> None:
    args = feed.parser().parse_args(["--symbols", "A,B", "--tick-rate", "5", "--seed", "3"])
    assert (args.symbols, args.tick_rate, args.seed, args.feed) == ("A,B", 5.0, 3, "simulated")
    with pytest.raises(SystemExit):
        feed.main(["feed", "--feed", "csv"])  # --csv-path is required
    with pytest.raises(SystemExit):
        feed.main(["feed", "--tick-rate", "0"])


def test_key_layout_round_trips() -> None:
    key = stream_key("abc-1", "market_data:AAPL")
    assert key == "rtstream:abc-1:market_data:AAPL"
    assert topic_of(key, "abc-1") == "market_data:AAPL"
    assert seq_of(entry_id(42)) == 42 and seq_of(b"0-7") == 7
    assert all(0.0 <= full_jitter(n, base=0.1, cap=2.0) <= 2.0 for n in range(50))


def test_relayed_market_data_gives_the_tick() -> None:
    text = (
        '{"data":{"symbol":"AAPL","price":1.5,"volume":100,'
        '"timestamp":"2024-03-01T14:30:15.123456Z"}}'
    )
    tick = _tick(text)
    assert tick is not None and tick.price == 1.5 and tick.timestamp.tzinfo is not None
    assert _tick("{}") is None
