"""Exact windowed sums for the indicators: no drift, no cancellation, exact zeros.

Split out of :mod:`.indicators` because it is numerics, not an indicator: SMA, Bollinger
bands and rolling volatility all keep their windows here.
"""

from __future__ import annotations

import math
from collections import deque


class ExactWindow:
    """Sum and sum of squares of a sliding window, kept *exactly*, O(1) per push.

    Each float is a dyadic rational, so ``x · 2**shift`` is an integer once ``shift`` is
    large enough (about 46 bits for prices near 100); the window's sums of those integers
    and of their squares are Python ints, so adding and evicting values never loses a bit.
    Mean and population variance are then single correctly rounded divisions of exact
    numbers: no drift over long streams, no cancellation (``n·Σx² - (Σx)²`` is exact and
    never negative, so no clamping is needed), and a window of identical values has a mean
    of exactly that value and a variance of exactly 0. ``shift`` only grows, when a value
    with more fractional bits arrives (rescaling the sums is a shift, still O(1)); the ints
    stay a few machine words long. Inputs must be finite.
    """

    __slots__ = (
        "_mean_den",
        "_s1",
        "_s2",
        "_scale",
        "_shift",
        "_squares",
        "_var_den",
        "_window",
        "period",
    )

    def __init__(self, period: int, *, squares: bool = True) -> None:
        self.period = period
        self._window: deque[float] = deque()
        self._squares = squares
        self._shift = 0
        self._scale = 1.0
        self._s1 = 0
        self._s2 = 0
        self._mean_den = period
        self._var_den = period * period

    def _as_int(self, x: float) -> int:
        """``x · 2**shift`` as an exact int, growing ``shift`` first if ``x`` needs it."""
        y = x * self._scale
        if y.is_integer():
            return int(y)
        num, den = x.as_integer_ratio()
        bits = den.bit_length() - 1
        if bits > self._shift:
            grow = bits - self._shift
            self._s1 <<= grow
            self._s2 <<= 2 * grow
            self._mean_den <<= grow
            self._var_den <<= 2 * grow
            self._shift = bits
            # Past 2**1000 the float scale would overflow; such values take this path.
            self._scale = 2.0**bits if bits <= 1000 else math.inf
        return num << (self._shift - bits)

    def push(self, x: float) -> bool:
        """Add ``x``, evicting the oldest value once full; return True when full."""
        xi = self._as_int(x)  # first: a non-finite x raises before any state changes
        window = self._window
        window.append(x)
        s1 = self._s1 + xi
        full = len(window) > self.period
        if self._squares:
            s2 = self._s2 + xi * xi
            if full:
                old = self._as_int(window.popleft())
                s1 -= old
                s2 -= old * old
            self._s2 = s2
        elif full:
            s1 -= self._as_int(window.popleft())
        self._s1 = s1
        return len(window) == self.period

    def mean(self) -> float:
        """Correctly rounded mean of the (full) window."""
        return self._s1 / self._mean_den

    def variance(self) -> float:
        """Correctly rounded population variance of the (full) window."""
        s1 = self._s1
        try:
            return (self.period * self._s2 - s1 * s1) / self._var_den
        except OverflowError:  # values beyond ~1e154 square past the float range
            return math.inf
