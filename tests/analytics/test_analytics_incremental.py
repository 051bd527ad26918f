"""Incremental == batch: feeding N values one at a time equals a full-window computation.

The references below recompute every output from the whole input. Window statistics (SMA,
Bollinger, volatility) are computed exactly with ``fractions.Fraction``: the incremental
classes keep exact integer sums, so they must agree to the last bit, not just to 1e-9.
EMA-type references use the closed form (seed·(1-k)^m + Σ k·(1-k)^j·x) with ``math.fsum``,
not the recursion, so they share no arithmetic with the incremental classes.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_rtstream.analytics import (
    EMA,
    MACD,
    RSI,
    SMA,
    VWAP,
    BollingerBands,
    RollingVolatility,
)

REL = 1e-9
SETTINGS = settings(max_examples=60, deadline=None)

price = st.floats(min_value=0.01, max_value=10_000.0, allow_nan=False, allow_infinity=False)


@st.composite
def price_lists(draw: st.DrawFn, min_size: int = 1, max_size: int = 160) -> list[float]:
    """Prices with occasional flat runs (a price repeated up to 30 times)."""
    runs = draw(
        st.lists(
            st.tuples(price, st.integers(min_value=1, max_value=30) | st.just(1)),
            min_size=1,
            max_size=max_size,
        )
    )
    values = [p for p, count in runs for _ in range(count)][:max_size]
    if len(values) < min_size:
        values += [values[-1]] * (min_size - len(values))
    return values


periods = st.integers(min_value=2, max_value=30)


def close(a: float | None, b: float | None, abs_tol: float = 0.0) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL, abs_tol=abs_tol)


def exact_mean(xs: Sequence[float]) -> Fraction:
    return sum(map(Fraction, xs), Fraction(0)) / len(xs)


def exact_pvariance(xs: Sequence[float]) -> Fraction:
    mean = exact_mean(xs)
    return sum(((Fraction(x) - mean) ** 2 for x in xs), Fraction(0)) / len(xs)


def sma_ref(xs: Sequence[float], n: int) -> list[float | None]:
    return [None if i < n - 1 else float(exact_mean(xs[i - n + 1 : i + 1])) for i in range(len(xs))]


def ema_closed_form(xs: Sequence[float], n: int, start: int = 0) -> list[float | None]:
    """EMA of xs[start:] aligned to xs: seeded at start + n - 1 with the SMA, closed form."""
    k = 2.0 / (n + 1)
    out: list[float | None] = [None] * len(xs)
    seed_at = start + n - 1
    if seed_at >= len(xs):
        return out
    seed = math.fsum(xs[start : seed_at + 1]) / n
    for i in range(seed_at, len(xs)):
        m = i - seed_at
        terms = [seed * (1 - k) ** m]
        terms += [k * (1 - k) ** (i - j) * xs[j] for j in range(seed_at + 1, i + 1)]
        out[i] = math.fsum(terms)
    return out


def rsi_ref(xs: Sequence[float], n: int) -> list[float | None]:
    diffs = [b - a for a, b in itertools.pairwise(xs)]
    out: list[float | None] = [None] * len(xs)
    for i in range(n, len(xs)):
        # Wilder's average after diff index i-1, as a closed-form weighted sum.
        m = i - n
        decay = (n - 1) / n
        g_seed = math.fsum(max(d, 0.0) for d in diffs[:n]) / n
        l_seed = math.fsum(max(-d, 0.0) for d in diffs[:n]) / n
        gain = math.fsum(
            [g_seed * decay**m]
            + [max(diffs[j], 0.0) / n * decay ** (i - 1 - j) for j in range(n, i)]
        )
        loss = math.fsum(
            [l_seed * decay**m]
            + [max(-diffs[j], 0.0) / n * decay ** (i - 1 - j) for j in range(n, i)]
        )
        out[i] = 0.0 if gain + loss == 0.0 else 100.0 * gain / (gain + loss)
    return out


def pstdev(xs: Sequence[float]) -> float:
    """Population stdev: sqrt of the correctly rounded exact variance."""
    return math.sqrt(float(exact_pvariance(xs)))


@SETTINGS
@given(price_lists(), periods)
def test_sma(xs: list[float], n: int) -> None:
    sma = SMA(n)
    for got, want in zip([sma.update(x) for x in xs], sma_ref(xs, n), strict=True):
        assert close(got, want), (got, want)
        assert got == want  # exact sums: the correctly rounded mean


@SETTINGS
@given(price_lists(), periods)
def test_ema(xs: list[float], n: int) -> None:
    ema = EMA(n)
    for got, want in zip([ema.update(x) for x in xs], ema_closed_form(xs, n), strict=True):
        assert close(got, want), (got, want)


@SETTINGS
@given(price_lists(), st.integers(min_value=2, max_value=20))
def test_rsi(xs: list[float], n: int) -> None:
    rsi = RSI(n)
    for got, want in zip([rsi.update(x) for x in xs], rsi_ref(xs, n), strict=True):
        assert close(got, want), (got, want)


@SETTINGS
@given(
    price_lists(),
    st.integers(min_value=2, max_value=12),
    st.integers(min_value=1, max_value=15),
    st.integers(min_value=1, max_value=9),
)
def test_macd(xs: list[float], fast: int, extra: int, signal: int) -> None:
    slow = fast + extra
    macd = MACD(fast, slow, signal)
    ours = [macd.update(x) for x in xs]
    fast_ema = ema_closed_form(xs, fast, start=slow - fast)
    slow_ema = ema_closed_form(xs, slow)
    line = [
        None if f is None or s is None else f - s for f, s in zip(fast_ema, slow_ema, strict=True)
    ]
    first_line = slow - 1
    signal_ref: list[float | None] = [None] * len(xs)
    if first_line < len(xs):
        tail = ema_closed_form([v for v in line[first_line:] if v is not None], signal)
        signal_ref[first_line:] = tail
    # The line is a difference of price-level EMAs: compare it at the prices' scale.
    abs_tol = 1e-9 * max(xs)
    for i, got in enumerate(ours):
        want_signal = signal_ref[i]
        if want_signal is None:
            assert got is None
            continue
        want_line = line[i]
        assert got is not None and want_line is not None
        assert close(got.macd, want_line, abs_tol), (i, got, want_line)
        assert close(got.signal, want_signal, abs_tol), (i, got, want_signal)
        assert close(got.hist, want_line - want_signal, abs_tol), i


@SETTINGS
@given(price_lists(), periods, st.sampled_from([1.0, 2.0, 2.5]))
def test_bollinger(xs: list[float], n: int, k: float) -> None:
    bands = BollingerBands(n, k)
    for i, x in enumerate(xs):
        got = bands.update(x)
        if i < n - 1:
            assert got is None
            continue
        window = xs[i - n + 1 : i + 1]
        mean = float(exact_mean(window))
        sigma = pstdev(window)
        assert got is not None
        assert close(got.upper, mean + k * sigma), (got, mean, sigma)
        assert close(got.middle, mean)
        assert close(got.lower, mean - k * sigma)
        # Exact sums: mean and sigma are the correctly rounded values, bit for bit.
        assert got == (mean + k * sigma, mean, mean - k * sigma)


@SETTINGS
@given(price_lists(min_size=2), periods)
def test_volatility(xs: list[float], n: int) -> None:
    vol = RollingVolatility(n)
    returns = [math.log(b / a) for a, b in itertools.pairwise(xs)]
    for i, x in enumerate(xs):
        got = vol.update(x)
        if i < n:
            assert got is None
            continue
        want = pstdev(returns[i - n : i])
        assert close(got, want), (got, want)
        assert got == want  # exact sums, as for Bollinger


@SETTINGS
@given(
    st.lists(
        st.tuples(price, st.floats(min_value=0.0, max_value=1e6) | st.just(0.0)),
        min_size=1,
        max_size=200,
    )
)
def test_vwap(ticks: list[tuple[float, float]]) -> None:
    vwap = VWAP()
    for i, (p, v) in enumerate(ticks):
        got = vwap.update(p, v)
        total = math.fsum(v for _, v in ticks[: i + 1])
        if total == 0.0:
            assert got is None
        else:
            want = math.fsum(p * v for p, v in ticks[: i + 1]) / total
            assert close(got, want), (got, want)
