"""The reconnect policy, in one pure place: which failure is which, and how long to wait.

A restart and an overload look alike to a naive client (the connection is gone) but call
for opposite answers. A server that is simply not there refuses a TCP connection in
microseconds: retrying soon costs nothing and rejoins it within about a second of it
listening again. A server that is there and says "not now" (close 1013, a ``retry_after``,
HTTP 429, a timeout) must be left alone for longer and longer, spread by jitter so that a
crowd of clients does not come back in one burst. So failures are sorted into four kinds
(:class:`FailureKind`) and each kind has its own delay rule:

============  =========================================================  ===================
kind          signals                                                    delay
============  =========================================================  ===================
unreachable   connection refused / reset before the handshake; an open   uniform(0.25, 1.0)
              connection that vanished without a close frame (kill -9)   for as long as it lasts
starting      HTTP 502/503/504 without ``Retry-After`` (a proxy in       uniform(0.25, 1.0) for
              front of a server that is starting)                        30 s, then as overload
overload      close 1013, 1001/1012 (and any other retryable close),     full jitter:
              ``retry_after`` in a close, HTTP 429, 503 with             uniform(0, min(30,
              ``Retry-After``, other 5xx, handshake/open/heartbeat       0.5 * 2**level)), never
              timeouts                                                   below ``retry_after``
refused       HTTP 400/401/403/404; close 1002/1003/1007/1010            final: no retry
============  =========================================================  ===================

``level`` counts the overload failures since the last *stable* connection: one that stayed
open ``stable_after`` seconds (10 s) after the server's ``connection_status``. Resetting it
on mere acceptance would let a server that accepts and closes 1013 at once pull one
reconnect per second forever. Server-given waits are clamped (:func:`clamp_retry_after`):
the client does not trust the wire to park it for a day.

Nothing here reads a clock or a global random source: ``now`` and ``rng`` are passed in,
so every rule is unit-tested with a fake clock. The JupyterLab extension implements the
same table.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from enum import Enum

BASE_DELAY = 0.5
MAX_DELAY = 30.0
FACTOR = 2.0
#: Quick retry window while nothing listens (seconds, uniform).
QUICK_MIN = 0.25
QUICK_MAX = 1.0
#: How long 502/503/504 without Retry-After keep the quick retry before backing off.
STARTING_WINDOW = 30.0
#: A connection open this long after its connection_status resets the overload level.
STABLE_AFTER = 10.0
#: Longest wait a server may impose through ``retry_after`` / ``Retry-After`` (seconds).
MAX_RETRY_AFTER = 120.0

#: Upgrade answers that retrying cannot fix (credentials, wrong URL, refused subprotocol).
REFUSED_HTTP = frozenset({400, 401, 403, 404})
#: Gateway answers of a proxy whose backend is not up yet.
STARTING_HTTP = frozenset({502, 503, 504})
#: Close codes that say "do not come back like this": protocol error, unsupported data,
#: invalid payload, missing extension. Reconnecting would only repeat the refusal.
REFUSED_CLOSE = frozenset({1002, 1003, 1007, 1010})


class FailureKind(str, Enum):
    """What a failure says about the server (see the module docstring's table)."""

    UNREACHABLE = "unreachable"
    STARTING = "starting"
    OVERLOAD = "overload"
    REFUSED = "refused"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Failure:
    """One classified failure: its kind, the server's wait (clamped) and a short detail."""

    kind: FailureKind
    retry_after: float | None = None
    #: e.g. ``"HTTP 503"``, ``"close 1013"``: shown in the status text.
    detail: str = ""


def clamp_retry_after(value: object) -> float | None:
    """A wire ``retry_after`` as a sane float: None if absent or invalid, else in
    ``[0, MAX_RETRY_AFTER]``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    if not math.isfinite(number) or number < 0:
        return None
    return min(number, MAX_RETRY_AFTER)


def parse_retry_after(header: str | None, now_epoch: float | None = None) -> float | None:
    """An HTTP ``Retry-After`` (delay-seconds, or an HTTP-date with ``now_epoch``), clamped."""
    if not header:
        return None
    text = header.strip()
    if text.isdigit():
        return clamp_retry_after(int(text))
    if now_epoch is None:
        return None
    try:
        when = parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return clamp_retry_after(max(0.0, when - now_epoch))


def classify_http(status: int, retry_after: float | None = None) -> Failure:
    """The upgrade was answered ``status`` (not 101)."""
    detail = f"HTTP {status}"
    if status in REFUSED_HTTP:
        return Failure(FailureKind.REFUSED, None, detail)
    if status in STARTING_HTTP and retry_after is None:
        return Failure(FailureKind.STARTING, None, detail)
    return Failure(FailureKind.OVERLOAD, retry_after, detail)


def classify_close(code: int | None, retry_after: float | None = None) -> Failure:
    """An open connection ended: a close frame with ``code``, or (None) no close frame."""
    if code is None or code == 1006:
        # The socket just died: the server process or the network went away. The next
        # attempt tells more (refused while the server restarts).
        return Failure(FailureKind.UNREACHABLE, None, "connection lost")
    if code in REFUSED_CLOSE:
        return Failure(FailureKind.REFUSED, None, f"close {code}")
    return Failure(FailureKind.OVERLOAD, retry_after, f"close {code}")


UNREACHABLE = Failure(FailureKind.UNREACHABLE, None, "not reachable")
TIMEOUT = Failure(FailureKind.OVERLOAD, None, "timeout")


def backoff_ceiling(
    attempt: int, base: float = BASE_DELAY, cap: float = MAX_DELAY, factor: float = FACTOR
) -> float:
    """Upper bound of the overload delay at escalation ``attempt`` (0-based)."""
    # Cap the exponent first: factor ** 2000 overflows a float.
    exp = min(attempt, 64)
    return min(cap, base * factor**exp)


class ReconnectPolicy:
    """The delay before each reconnection attempt, per :class:`Failure` (see the table).

    Two counters, on purpose: ``attempts`` counts the attempts of the current outage (what
    a person reads: "attempt 3"; :meth:`connected` zeroes it), ``level`` is the overload
    escalation, which only :meth:`stable` (or :meth:`reset`) brings back to 0.
    """

    def __init__(
        self,
        base: float = BASE_DELAY,
        cap: float = MAX_DELAY,
        factor: float = FACTOR,
        rng: random.Random | None = None,
        *,
        quick: tuple[float, float] = (QUICK_MIN, QUICK_MAX),
        starting_window: float = STARTING_WINDOW,
    ) -> None:
        if base <= 0 or cap <= 0 or factor < 1:
            raise ValueError("backoff needs base > 0, cap > 0 and factor >= 1")
        if not 0 <= quick[0] <= quick[1]:
            raise ValueError("quick retry needs 0 <= low <= high")
        self.base, self.cap, self.factor = base, cap, factor
        self.rng = rng or random.Random()
        self.quick = quick
        self.starting_window = starting_window
        self.attempts = 0
        self.level = 0
        #: ``now`` of the first 502/503/504 since the last stable connection.
        self.starting_since: float | None = None

    def reset(self) -> None:
        """Forget everything (a new stream, or a test)."""
        self.connected()
        self.stable()

    def connected(self) -> None:
        """A connection opened: the outage is over (its attempt count restarts)."""
        self.attempts = 0

    def stable(self) -> None:
        """A connection stayed healthy long enough: the server copes, de-escalate."""
        self.level = 0
        self.starting_since = None

    def ceiling(self) -> float:
        """Upper bound of the next overload delay (before ``retry_after``)."""
        return backoff_ceiling(self.level, self.base, self.cap, self.factor)

    def next_delay(
        self,
        failure: Failure | None = None,
        now: float = 0.0,
        retry_after: float | None = None,
    ) -> float:
        """Count one failed attempt and return the wait before the next one.

        ``failure`` None means an overload with ``retry_after`` (the historical call).
        Raises ``ValueError`` for a refusal: there is no next attempt.
        """
        if failure is None:
            failure = Failure(FailureKind.OVERLOAD, clamp_retry_after(retry_after))
        self.attempts += 1
        kind = failure.kind
        if kind is FailureKind.REFUSED:
            raise ValueError(f"a refusal is final: {failure.detail}")
        if kind is FailureKind.STARTING:
            if self.starting_since is None:
                self.starting_since = now
            if now - self.starting_since < self.starting_window:
                return self._quick()
        elif kind is FailureKind.UNREACHABLE:
            return self._quick()
        delay = self.rng.uniform(0.0, self.ceiling())
        self.level += 1
        if failure.retry_after is not None:
            delay = max(delay, failure.retry_after)
        return delay

    def _quick(self) -> float:
        low, high = self.quick
        return self.rng.uniform(low, high)


def status_text(failure: Failure, delay: float | None) -> str:
    """What a person should read while the client waits (or after it gave up)."""
    if failure.kind is FailureKind.REFUSED:
        return f"refused: {failure.detail.removeprefix('HTTP ')}"
    when = "retrying" if delay is None or delay < 1.5 else f"retrying in {delay:.0f} s"
    if failure.kind is FailureKind.UNREACHABLE:
        return f"server not reachable, {when}"
    if failure.kind is FailureKind.STARTING:
        return f"server starting ({failure.detail}), {when}"
    return f"server busy ({failure.detail}), {when}" if failure.detail else f"server busy, {when}"
