"""Axis ticks that follow the visible range (pure: no widgets, no clock).

bqplot (d3) picks ticks from the scale's domain and prints them with one fixed format, so a
tight price range printed ``.2f`` repeats labels, a fast feed's time axis repeats
``%H:%M:%S``, and the number of labels does not depend on how much room there is. Here the
chart computes them itself:

- :func:`price_axis`: a "nice" step (1, 2, 2.5 or 5 times 10^k) that gives at most
  ``max_ticks`` labels over the data, bounds snapped to that step (the scale's min/max, so
  the domain only moves when the data leaves it or shrinks to under a third of it: no
  re-layout every tick), and just enough decimals that neighbouring labels differ;
- :func:`time_axis`: a step from a calendar ladder (1 ms ... 12 h) that gives at most
  ``max_ticks`` labels over the window, with milliseconds in the format only when the step
  is under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: Multipliers of a power of ten that make "nice" steps.
NICE = (1.0, 2.0, 2.5, 5.0, 10.0)
#: Vertical room of one y label (px): at most ``height // LABEL_PX`` labels.
LABEL_PX = 32
#: Time steps (ms), smallest first.
TIME_STEPS_MS = (
    *(1, 2, 5, 10, 20, 50, 100, 200, 250, 500),
    *(1_000 * s for s in (1, 2, 5, 10, 15, 30)),
    *(60_000 * m for m in (1, 2, 5, 10, 15, 30)),
    *(3_600_000 * h for h in (1, 2, 3, 6, 12)),
)


def nice_step(span: float, max_intervals: int) -> float:
    """The smallest nice step that cuts ``span`` into at most ``max_intervals`` parts."""
    raw = span / max(1, max_intervals)
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in NICE:
        if factor * magnitude >= raw * (1 - 1e-12):
            return factor * magnitude
    return 10.0 * magnitude  # pragma: no cover - NICE ends with 10


def decimals_for(step: float) -> int:
    """Decimals that print every multiple of ``step`` distinctly (and no more)."""
    for digits in range(0, 16):
        scaled = step * 10.0**digits
        if abs(scaled - round(scaled)) < 1e-6 * scaled:
            return digits
    return 15


@dataclass(frozen=True)
class PriceAxis:
    lo: float
    hi: float
    step: float
    ticks: tuple[float, ...]
    tick_format: str

    @property
    def label_chars(self) -> int:
        """Characters of the widest label (for the figure's left margin)."""
        fmt = self.tick_format.lstrip(",").rstrip("f").lstrip(".")
        return max(len(f"{t:,.{int(fmt)}f}") for t in self.ticks)


def price_axis(
    low: float, high: float, *, height_px: float = 240, current: PriceAxis | None = None
) -> PriceAxis:
    """A y axis for data in ``[low, high]``; ``current`` is kept while it still fits."""
    max_ticks = max(2, int(height_px // LABEL_PX))
    if (
        current is not None
        and current.lo <= low
        and high <= current.hi
        and (high - low) * 3 >= current.hi - current.lo
        and len(current.ticks) <= max_ticks
    ):
        return current
    span = high - low
    if not span > 0:
        # One value (or one repeated): a range of about 1% around it (or around 0).
        span = abs(high) * 0.02 if high else 1.0
        low, high = low - span / 2, high + span / 2
    step = nice_step(span, max_ticks - 1)
    while True:
        lo = math.floor(low / step + 1e-9) * step
        hi = math.ceil(high / step - 1e-9) * step
        if hi <= lo:
            hi = lo + step
        count = round((hi - lo) / step) + 1
        if count <= max_ticks:
            break
        step = nice_step(step * 1.01, 1)  # the next nice step up
    digits = decimals_for(step)
    ticks = tuple(round(lo + k * step, digits) for k in range(count))
    # Rounded ticks may sit a float ulp inside the data: the bounds take both.
    return PriceAxis(min(ticks[0], low), max(ticks[-1], high), step, ticks, f",.{digits}f")


@dataclass(frozen=True)
class TimeAxis:
    step_ms: int
    ticks_ms: tuple[int, ...]
    tick_format: str


def time_axis(first_ms: float, last_ms: float, *, max_ticks: int = 5) -> TimeAxis:
    """Ticks (ms since the epoch) inside ``[first_ms, last_ms]``, at most ``max_ticks``."""
    span = max(0.0, last_ms - first_ms)
    step = next((s for s in TIME_STEPS_MS if span / s <= max_ticks - 1), TIME_STEPS_MS[-1])
    start = math.ceil(first_ms / step) * step
    ticks = tuple(int(start + k * step) for k in range(max_ticks) if start + k * step <= last_ms)
    return TimeAxis(step, ticks, "%H:%M:%S.%L" if step < 1_000 else "%H:%M:%S")
