"""Full-jitter exponential backoff (AWS architecture blog), as a pure delay generator.

``delay(attempt) = uniform(0, min(cap, base * factor ** attempt))``. Full jitter spreads a
crowd of clients cut at the same instant over the whole window instead of a few spikes.
The caller restarts the generator (``attempt = 0``) when a connection is confirmed healthy.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

BASE_DELAY = 0.5
MAX_DELAY = 30.0
FACTOR = 2.0


def backoff_ceiling(
    attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY, factor: float = FACTOR
) -> float:
    """Upper bound of the delay before retry number ``attempt`` (0-based)."""
    # Cap the exponent first: factor ** 2000 overflows a float.
    exp = min(attempt, 64)
    return min(cap, base * factor**exp)


def backoff(
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
    factor: float = FACTOR,
    rng: random.Random | None = None,
) -> Iterator[float]:
    """Yield full-jitter delays forever: attempt 0, 1, 2, ..."""
    uniform = (rng or random.Random()).uniform
    attempt = 0
    while True:
        yield uniform(0.0, backoff_ceiling(attempt, base, cap, factor))
        attempt += 1
