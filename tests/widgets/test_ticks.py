"""Axis ticks follow the visible range: distinct labels, enough room, at every scale."""

from __future__ import annotations

import math

import pytest

from jupyter_rtstream.widgets._ticks import (
    LABEL_PX,
    decimals_for,
    nice_step,
    price_axis,
    time_axis,
)

LEVELS = [10.0**k for k in range(-4, 6)]  # 0.0001 ... 100,000
RELATIVE_SPANS = [0.0, 1e-6, 1e-4, 1e-3, 0.01, 0.05, 0.3, 1.0]


def labels(axis_ticks: tuple[float, ...], tick_format: str) -> list[str]:
    digits = int(tick_format.split(".")[1].rstrip("f"))
    return [f"{t:,.{digits}f}" for t in axis_ticks]


@pytest.mark.parametrize("height", [120.0, 220.0, 400.0])
@pytest.mark.parametrize("level", LEVELS)
def test_price_labels_never_overlap_or_repeat(level: float, height: float) -> None:
    for relative in RELATIVE_SPANS:
        low, high = level * (1 - relative / 2), level * (1 + relative / 2)
        axis = price_axis(low, high, height_px=height)
        text = labels(axis.ticks, axis.tick_format)
        assert len(set(text)) == len(text), (level, relative, text)  # distinct labels
        assert 2 <= len(axis.ticks) <= max(2, int(height // LABEL_PX)), (level, relative)
        # Room: consecutive labels at least LABEL_PX apart on the plot's height.
        assert height / (len(axis.ticks) - 1) >= LABEL_PX or len(axis.ticks) == 2
        assert axis.lo <= low and high <= axis.hi  # the data is inside the scale
        pairs = zip(axis.ticks[:-1], axis.ticks[1:], strict=True)
        steps = {round((b - a) / axis.step, 6) for a, b in pairs}
        assert steps == {1.0}
        # Not wasteful: the data fills a fair part of the scale.
        if relative > 0:
            assert (high - low) / (axis.hi - axis.lo) > 0.2, (level, relative, axis)


def test_the_issue_range_prints_distinct_labels() -> None:
    axis = price_axis(421.95, 422.45, height_px=220)
    text = labels(axis.ticks, axis.tick_format)
    assert text == sorted(set(text), key=text.index)
    assert axis.tick_format == ",.1f"


def test_the_axis_is_kept_while_the_data_fits() -> None:
    first = price_axis(100.0, 101.0)
    assert price_axis(100.2, 100.9, current=first) is first  # still fits: no re-layout
    moved = price_axis(100.2, 101.6, current=first)
    assert moved is not first and moved.hi >= 101.6
    shrunk = price_axis(100.40, 100.41, current=first)  # a much tighter range: re-fit
    assert shrunk.hi - shrunk.lo < 0.1


def test_nice_steps_and_decimals() -> None:
    assert nice_step(1.0, 5) == pytest.approx(0.2)
    assert nice_step(0.9, 4) == pytest.approx(0.25)
    assert nice_step(70_000, 7) == pytest.approx(10_000)
    assert decimals_for(0.25) == 2 and decimals_for(5.0) == 0 and decimals_for(0.0002) == 4


@pytest.mark.parametrize(
    "span_ms", [0, 40, 900, 2_500, 10_000, 50_000, 600_000, 3_600_000, 86_400_000]
)
def test_time_labels_are_distinct_at_any_window_length(span_ms: int) -> None:
    first = 1_767_623_400_123.0
    axis = time_axis(first, first + span_ms, max_ticks=5)
    assert len(axis.ticks_ms) <= 5
    assert all(first <= t <= first + span_ms for t in axis.ticks_ms)
    # Labels as d3 prints them: seconds, plus milliseconds when the step is below 1 s.
    divisor = 1 if "%L" in axis.tick_format else 1000
    shown = [math.floor(t / divisor) for t in axis.ticks_ms]
    assert len(set(shown)) == len(shown)
    if span_ms >= 2_500:
        assert len(axis.ticks_ms) >= 2
