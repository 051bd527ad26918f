"""Live frames against a real server: history, then live rows, without duplicates."""

from __future__ import annotations

from typing import Any

import pandas as pd

import jupyter_rtstream
from jupyter_rtstream.client.rest import RestAPI
from jupyter_rtstream.testing import ServerProcess

from ._helpers import run, wait_until


def segments(df: Any) -> list[list[int]]:
    """The frame's seqs, split at gap rows."""
    out: list[list[int]] = [[]]
    for seq, gap in zip(df["seq"], df["gap"], strict=True):
        if gap:
            out.append([])
        else:
            out[-1].append(int(seq))
    return out


def test_frame_loads_history_then_grows_live_without_duplicates(
    live_server: ServerProcess,
) -> None:
    async def scenario() -> None:
        stream = await jupyter_rtstream.connect(live_server.url, live_server.token)
        try:
            frame = await stream.frame("aapl", kind="market_data", window=5_000)
            assert frame.topic == "market_data:AAPL" and frame.history_seq is not None
            assert "market_data:AAPL" in stream.subscriptions
            first = frame.df
            assert len(first) >= 300, "the seeded history (history_ticks=300) at least"
            updates: list[int] = []
            frame.on_update(lambda f: updates.append(len(f.df)))
            await wait_until(lambda: frame.last_seq >= frame.history_seq + 20, what="live rows")
            df = frame.df
            assert len(df) > len(first) and updates
            assert df.index.name == "timestamp" and df.index.is_monotonic_increasing
            assert {"seq", "gap", "price", "volume", "change_percent"} <= set(df.columns)
            seqs = df.loc[~df["gap"], "seq"]
            assert seqs.is_unique and seqs.is_monotonic_increasing
            last = segments(df)[-1]
            assert last == list(range(last[0], last[-1] + 1)), "consecutive: no gap, no dup"
            assert last[0] <= frame.history_seq < last[-1], "across the history/live boundary"
            assert (df.loc[~df["gap"], "price"] > 0).all()
            await frame.close()
            assert "market_data:AAPL" not in stream.subscriptions, "it subscribed, it leaves"
            rows = len(frame.df)
            await stream.ping()
            assert frame.closed and len(frame.df) == rows
        finally:
            await stream.close()

    run(scenario())


def test_close_unsubscribes_only_what_frames_subscribed(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await jupyter_rtstream.connect(live_server.url, live_server.token)
        try:
            await stream.subscribe("market_data", "MSFT")
            mine = await stream.frame("MSFT", window=100)
            await mine.close()
            assert "market_data:MSFT" in stream.subscriptions, "the user's subscription stays"
            a = await stream.frame("GOOG", window=100)
            b = await stream.frame("GOOG", window=100)
            await a.close()
            assert "market_data:GOOG" in stream.subscriptions, "b still uses it"
            grown = b.last_seq
            await wait_until(lambda: b.last_seq > grown, what="b keeps growing")
            await b.close()
            assert "market_data:GOOG" not in stream.subscriptions
        finally:
            await stream.close()

    run(scenario())


def test_window_bound_and_several_symbols(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        stream = await jupyter_rtstream.connect(live_server.url, live_server.token)
        try:
            frames = await stream.frames(["AMZN", "nvda"], kind="technical_indicators", window=40)
            assert list(frames) == ["AMZN", "NVDA"] and frames["nvda"].symbol == "NVDA"
            start = {s: f.last_seq for s, f in frames.items()}
            await wait_until(
                lambda: all(f.last_seq > start[s] + 45 for s, f in frames.items()),
                what="more rows than the window",
            )
            for frame in frames.values():
                df = frame.df
                assert len(df) == 40 and df.index.name == "calculated_at"
                assert {"sma_20", "rsi_14", "macd", "bb_upper"} <= set(df.columns)
            both = frames.df
            assert isinstance(both.index, pd.MultiIndex)
            assert both.index.names == ["symbol", "calculated_at"]
            assert set(both.index.get_level_values("symbol")) == {"AMZN", "NVDA"}
            await frames.close()
            assert stream.subscriptions == []
        finally:
            await stream.close()

    run(scenario())


def test_rest_history_pages_like_one_read(live_server: ServerProcess) -> None:
    async def scenario() -> None:
        api = RestAPI(live_server.url, live_server.token)
        one = await api.history("AAPL", since=0, limit=300)
        paged = await api.history_since("AAPL", since=0, until_seq=300, page=70)
        assert [m.seq for m in one.messages] == list(range(1, 301))
        assert [m.seq for m in paged.messages][:300] == list(range(1, 301))
        assert one.epoch == paged.epoch and one.topic == "market_data:AAPL"

    run(scenario())
