"""The chunked table of live frames and a frame's row logic (seq dedupe, gap rows), fed
by hand: no server, no stream."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pandas as pd
import pytest

from jupyter_rtstream.client.frames import LiveFrame, row_of
from jupyter_rtstream.client.state import GapEvent
from jupyter_rtstream.client.table import ChunkedTable
from jupyter_rtstream.core.messages import (
    AnalysisResults,
    AnalyticsUpdate,
    AnalyticsUpdatePayload,
    MarketData,
    MarketDataPayload,
    TechnicalIndicators,
    TechnicalIndicatorsPayload,
)

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)


def md(seq: int, price: float | None = None) -> MarketData:
    at = T0 + timedelta(seconds=seq)
    return MarketData(
        topic="market_data:AAPL",
        seq=seq,
        data=MarketDataPayload(
            instrument_id=1,
            symbol="AAPL",
            price=price if price is not None else 100.0 + seq,
            volume=100.0,
            timestamp=at,
        ),
    )


def frame(window: int = 100, chunk: int = 8) -> LiveFrame:
    return LiveFrame(object(), "aapl", "market_data", window=window, chunk=chunk)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- ChunkedTable


def test_table_rows_columns_and_index() -> None:
    table = ChunkedTable(10, index_name="t", time_columns={"at"}, chunk=4)
    for i in range(6):
        table.append(1_700_000_000.0 + i + 0.123456, {"seq": i + 1, "x": float(i), "at": 1.5})
    df = table.df
    assert list(df.columns) == ["seq", "x", "at"] and len(df) == len(table) == 6
    assert df.index.name == "t" and str(df.index.tz) == "UTC"
    assert df.index[0] == pd.Timestamp(1_700_000_000_123_456, unit="us", tz="UTC")
    assert df.index.is_monotonic_increasing
    assert df["seq"].dtype == "Int64" and df["seq"].tolist() == [1, 2, 3, 4, 5, 6]
    assert df["at"].iloc[0] == pd.Timestamp(1_500_000, unit="us", tz="UTC")


def test_table_window_bound_holds_across_chunks() -> None:
    table = ChunkedTable(10, chunk=4)
    for i in range(1, 1001):
        table.append(float(i), {"seq": i})
        assert len(table) == min(i, 10)
        assert table._frozen_rows + len(table._times) < 10 + 2 * 4, "whole chunks fall off"
    df = table.df
    assert df["seq"].tolist() == list(range(991, 1001)) and table.appended == 1000


def test_table_reads_are_cached_until_the_next_append() -> None:
    table = ChunkedTable(100, chunk=4)
    for i in range(10):
        table.append(float(i), {"seq": i})
    first = table.df
    assert table.df is first
    table.append(10.0, {"seq": 10})
    assert table.df is not first and len(table.df) == 11 and len(first) == 10


def test_table_new_and_missing_columns_are_filled() -> None:
    table = ChunkedTable(100, chunk=3)
    table.append(1.0, {"a": 1.0})
    table.append(2.0, {"a": 2.0, "b": "x"})
    table.append(3.0, {"b": "y"})
    table.append(4.0, {"a": 4.0, "b": "z"})
    df = table.df
    assert df["a"].isna().tolist() == [False, False, True, False]
    assert df["b"].tolist()[1:] == ["x", "y", "z"] and pd.isna(df["b"].iloc[0])


def test_table_empty_and_bounds() -> None:
    assert len(ChunkedTable(5).df) == 0
    with pytest.raises(ValueError):
        ChunkedTable(0)


# --------------------------------------------------------------------------- rows of messages


def test_rows_flatten_indicators_and_analysis() -> None:
    indicators = TechnicalIndicators(
        topic="technical_indicators:AAPL",
        seq=3,
        data=TechnicalIndicatorsPayload(
            instrument_id=1,
            symbol="AAPL",
            indicators={"sma_20": 1.5, "rsi_14": None},
            calculated_at=T0,
        ),
    )
    time, row = row_of(indicators, "calculated_at")
    assert time == T0.timestamp()
    assert row == {
        "seq": 3,
        "gap": False,
        "instrument_id": 1,
        "symbol": "AAPL",
        "sma_20": 1.5,
        "rsi_14": None,
    }
    analytics = AnalyticsUpdate(
        topic="analytics:AAPL",
        seq=1,
        data=AnalyticsUpdatePayload(
            instrument_id=1,
            symbol="AAPL",
            calculation_time=T0,
            results=AnalysisResults.model_validate({"trend": "bullish", "extra_figure": 2.0}),
        ),
    )
    _, row = row_of(analytics, "calculation_time")
    assert row["trend"] == "bullish" and row["extra_figure"] == 2.0 and "results" not in row


# --------------------------------------------------------------------------- LiveFrame rows


def test_frame_drops_duplicated_and_older_seqs() -> None:
    f = frame()
    for seq in (1, 2, 3, 2, 3, 1, 4):
        f.append(md(seq))
    df = f.df
    assert df["seq"].tolist() == [1, 2, 3, 4] and not df["gap"].any()
    assert f.duplicates == 3 and f.last_seq == 4 and f.gaps == 0
    assert df.index.name == "timestamp" and "timestamp" not in df.columns
    assert df["price"].tolist() == [101.0, 102.0, 103.0, 104.0]


def test_a_seq_jump_leaves_a_gap_row() -> None:
    f = frame()
    for seq in (1, 2, 5, 6):
        f.append(md(seq))
    df = f.df
    assert df["gap"].tolist() == [False, False, True, False, False]
    gap = df[df["gap"]]
    assert gap["price"].isna().all() and gap["seq"].isna().all()
    assert gap.index[0] == df.index[3], "the gap row is dated like the row after it"
    assert f.gaps == 1
    returns = df["price"].pct_change(fill_method=None)
    assert returns.iloc[2:4].isna().all() and returns.iloc[4] > 0, "no return bridges the gap"


def test_a_gap_event_marks_a_gap_and_an_epoch_change_restarts_seqs() -> None:
    f = frame()
    f.append(md(10))
    f.append(md(11))
    f.mark_gap(GapEvent("market_data:AAPL", "out_of_buffer", 11, "E1", "E1"))
    f.append(md(12))  # even a consecutive seq: the resume said messages were lost
    f.mark_gap(GapEvent("market_data:AAPL", "epoch_changed", 12, "E1", "E2"))
    f.append(md(1))  # the new server's seqs start over
    f.append(md(2))
    assert f.df["seq"].tolist()[-2:] == [1, 2]
    assert f.df["gap"].tolist() == [False, False, True, False, True, False, False]
    assert f.gaps == 2 and f.duplicates == 0


def test_a_gap_before_any_row_adds_no_gap_row() -> None:
    f = frame()
    f.mark_gap(GapEvent("market_data:AAPL", "out_of_buffer", 3, "E", "E"))
    f.append(md(7))
    assert f.df["gap"].tolist() == [False]


def test_frame_window_and_live_callbacks() -> None:
    f = frame(window=50, chunk=16)
    seen: list[Any] = []
    remove = f.on_update(lambda fr: seen.append(fr.last_seq))
    for seq in range(1, 201):
        f._on_message(md(seq))
    assert len(f.df) == 50 and f.df["seq"].tolist() == list(range(151, 201))
    assert seen == list(range(1, 201))
    remove()
    f._on_message(md(201))
    assert len(seen) == 200


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        LiveFrame(object(), "AAPL", "alerts")  # type: ignore[arg-type]


def test_without_pandas_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib
    import sys

    monkeypatch.setitem(sys.modules, "pandas", None)  # what `import pandas` sees when absent
    monkeypatch.delitem(sys.modules, "jupyter_rtstream.client._pandas")
    with pytest.raises(ImportError, match=r"jupyter-rtstream\[pandas\]"):
        importlib.import_module("jupyter_rtstream.client._pandas")
