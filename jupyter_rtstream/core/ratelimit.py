"""The one token bucket of the package (pure; the clock is injected).

Two users, one arithmetic: the server session refuses client frames over
``rate`` per second (:meth:`TokenBucket.take`), and the widgets' frame limiter paces
renders by *reserving* a token and waiting until it has been earned
(:meth:`TokenBucket.reserve`). Keeping both on one class means a burst means the same
thing everywhere, and tests drive either with a fake clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` banked; starts full."""

    __slots__ = ("burst", "clock", "rate", "tokens", "updated")  # one per connected client

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.clock = clock
        self.updated = clock()

    def _refill(self) -> None:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self) -> bool:
        """Take a token if one is banked; False (and nothing taken) when empty."""
        self._refill()
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def time_until_token(self) -> float:
        """Seconds until a whole token is banked (0 when one is available now; infinite
        when ``rate`` is 0 and the burst is spent)."""
        self._refill()
        if self.tokens >= 1.0:
            return 0.0
        return (1.0 - self.tokens) / self.rate if self.rate > 0 else math.inf

    def time_until(self, amount: float) -> float:
        """Seconds until ``amount`` tokens are banked (capped at ``burst``; 0 when they are
        now, or when the bucket is in debt by less than nothing; infinite when ``rate`` is
        0 and they are not)."""
        self._refill()
        need = min(amount, self.burst)
        if self.tokens >= need:
            return 0.0
        return (need - self.tokens) / self.rate if self.rate > 0 else math.inf

    def spend(self, amount: float) -> None:
        """Take ``amount`` tokens, going into debt if fewer are banked (later waits repay
        it, so the long-run rate still holds)."""
        self._refill()
        self.tokens -= amount

    def reserve(self) -> float:
        """Take a token now, borrowing it if the bucket is empty; return the seconds until
        the borrowed token is earned (0 when one was banked). The caller waits that long,
        so the long-run rate never exceeds ``rate`` and bursts never exceed ``burst``."""
        wait = self.time_until_token()
        self.tokens -= 1.0
        return wait
