"""Full-jitter exponential backoff (the overload rule of ``ReconnectPolicy``): bounds, cap,
no overflow, reproducible with a seeded RNG."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterator

import pytest

from jupyter_rtstream.core.backoff import (
    BASE_DELAY,
    FACTOR,
    MAX_DELAY,
    Failure,
    FailureKind,
    ReconnectPolicy,
    backoff_ceiling,
)

OVERLOAD = Failure(FailureKind.OVERLOAD, None, "close 1013")


def backoff(
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
    factor: float = FACTOR,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """The policy's delays for one overload after another, as an endless sequence."""
    policy = ReconnectPolicy(base, cap, factor, rng)
    while True:
        yield policy.next_delay(OVERLOAD)


class MaxRandom(random.Random):
    """Always draws the top of the range: every delay equals its ceiling."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_defaults() -> None:
    assert (BASE_DELAY, MAX_DELAY, FACTOR) == (0.5, 30.0, 2.0)


@pytest.mark.parametrize("seed", [0, 1, 42, 2024])
def test_delays_stay_within_the_full_jitter_window(seed: int) -> None:
    delays = list(itertools.islice(backoff(rng=random.Random(seed)), 200))
    for attempt, delay in enumerate(delays):
        assert 0.0 <= delay <= min(MAX_DELAY, BASE_DELAY * 2.0 ** min(attempt, 64))


def test_seeded_rng_is_reproducible() -> None:
    first = list(itertools.islice(backoff(rng=random.Random(7)), 30))
    again = list(itertools.islice(backoff(rng=random.Random(7)), 30))
    other = list(itertools.islice(backoff(rng=random.Random(8)), 30))
    assert first == again
    assert first != other


def test_jitter_spreads_over_the_window() -> None:
    # Past the cap every delay is uniform on [0, 30]: the mean is near 15, not a spike.
    delays = list(itertools.islice(backoff(rng=random.Random(3)), 2000))[20:]
    mean = sum(delays) / len(delays)
    assert 13.5 < mean < 16.5
    assert min(delays) < 1.0
    assert max(delays) > 29.0


def test_ceilings_double_then_reach_the_cap() -> None:
    ceilings = [backoff_ceiling(n) for n in range(10)]
    assert ceilings[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert ceilings[6:] == [30.0] * 4
    top = list(itertools.islice(backoff(rng=MaxRandom()), 10))
    assert top == ceilings


def test_ceiling_never_overflows() -> None:
    for attempt in (64, 65, 1_000, 2_000, 10_000, 10**9):
        ceiling = backoff_ceiling(attempt)
        assert ceiling == MAX_DELAY
        assert math.isfinite(ceiling)
    assert backoff_ceiling(10_000, base=1.0, cap=1e300, factor=3.0) == 3.0**64
    gen = backoff(rng=MaxRandom())
    for _ in range(10_000):
        delay = next(gen)
    assert delay == MAX_DELAY


def test_custom_base_cap_factor() -> None:
    top = list(itertools.islice(backoff(base=0.1, cap=1.0, factor=3.0, rng=MaxRandom()), 5))
    assert top == pytest.approx([0.1, 0.3, 0.9, 1.0, 1.0])


def test_default_rng_works() -> None:
    delays = list(itertools.islice(backoff(), 5))
    assert all(0.0 <= d <= 8.0 for d in delays)
