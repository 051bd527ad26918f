"""Alert rules and their edge-triggered evaluation (pure: no storage, no clock).

Conditions (``AlertRule.condition``), each comparing a *value* with a *reference*:

==========================  ===================================  ==========================
condition                   value                                true when
==========================  ===================================  ==========================
``price_above``/``_below``  the tick's price                     value >/< ``target_value``
``percent_change_above``    percent move of price over the last  value >/< ``target_value``
``percent_change_below``    ``window_seconds`` [60] (see below)  (e.g. -2.0 = a 2 % drop)
``indicator_above``         ``indicators[indicator]``            value >/< ``target_value``
``indicator_below``
``crosses_above``           ``indicators[indicator]``            value >/< ``other_indicator``
``crosses_below``                                                (``target_value`` if None)
==========================  ===================================  ==========================

The indicator name ``"price"`` means the tick's price.

Firing semantics (edge-triggered): a rule fires when its condition goes from false to true.
The first known value only records the state (a rule added while the price is already
above its line does not fire until the price dips below and crosses again); that first
value is the instrument's current state when there is one (see ``observe``). After a fire
the rule re-arms only once the condition has been observed false. A
transition within ``cooldown_seconds`` of the previous fire (measured on tick timestamps, so
replays behave like live data) is swallowed: the state still becomes true, so the rule
needs a fresh false-to-true transition after the cooldown. A ``None`` (not yet warm)
indicator value, or a percent move without enough history, is "unknown": it leaves the
recorded state untouched and never fires.

Percent move: the reference price is the *as-of* price ``window_seconds`` ago, i.e. that of
the newest observation at least ``window_seconds`` older than the current tick, so
irregular ticks are handled; until such an observation exists the move is unknown. The
evaluator keeps a deque of ``(t, price)`` trimmed from the left (amortized O(1)).
The deque is bounded by count too (at most about ``MAX_HISTORY_POINTS``): an observation
closer than ``window_seconds / MAX_HISTORY_POINTS`` to the one before it replaces the newest
entry instead of adding one, so a one-day window at 1,000 ticks/s keeps ~1,000 points, and
the reference price is exact to within that spacing.

Event time never runs backwards: a timestamp earlier than the latest seen counts as the
latest seen (the server refuses ticks more than ``max_clock_skew`` in the future, so one
bad clock cannot silence cooldowns and percent rules for longer than that).

A rule can start from its instrument's current state (:meth:`RuleEvaluator.observe`, which
the engine calls when a rule is added to an instrument that has ticked, and on warm-up
ticks): created while the price is 50, ``price_above 100`` fires on the next tick at 101.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from ..core.vocabulary import (
    ALERT_CONDITIONS,
    INDICATOR_CONDITIONS,
    MAX_WINDOW_SECONDS,
    PERCENT_CONDITIONS,
    PRICE_CONDITIONS,
    RULE_INDICATORS,
    SEVERITIES,
    AlertCondition,
    Severity,
    rule_shape_problem,
)

__all__ = [
    "CONDITIONS",
    "DEFAULT_WINDOW_SECONDS",
    "SEVERITIES",
    "VALID_INDICATORS",
    "AlertRule",
    "FiredAlert",
    "RuleEvaluator",
    "validate_rule",
]

# The rule vocabulary is the protocol's (core.vocabulary): one list of conditions and
# severities for the wire, the REST body and the engine.
CONDITIONS: frozenset[AlertCondition] = frozenset(ALERT_CONDITIONS)
"""Every accepted ``AlertRule.condition``."""

VALID_INDICATORS: frozenset[str] = RULE_INDICATORS
"""Names accepted as ``indicator``/``other_indicator``: the ``IndicatorSet`` keys and price."""

DEFAULT_WINDOW_SECONDS = 60.0
#: Bound of a percent rule's price history (see the module docstring).
MAX_HISTORY_POINTS = 1024


@dataclass(frozen=True, slots=True)
class AlertRule:
    """A user's alert rule, as stored; check it with ``validate_rule`` before use."""

    rule_id: int
    rule_name: str
    symbol: str
    condition: AlertCondition
    target_value: float
    severity: Severity
    indicator: str | None = None
    other_indicator: str | None = None
    window_seconds: float | None = None
    cooldown_seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class FiredAlert:
    """One firing of a rule: the ``alert`` payload minus the ``alert_id`` storage assigns.

    ``current_value`` is the value that was compared: the price, the percent move, or the
    (left-hand) indicator's value.
    """

    rule_id: int
    symbol: str
    rule_name: str
    condition: AlertCondition
    target_value: float
    current_value: float
    severity: Severity
    message: str
    timestamp: datetime


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_rule(rule: AlertRule) -> AlertRule:
    """Return ``rule`` unchanged if it is well-formed; raise ``ValueError`` saying why not.

    This is the boundary for rules built in Python (and the engine's guard); the REST API
    validates its body once with ``core.rest.RuleIn``, which checks the same shape with the
    same :func:`~jupyter_rtstream.core.vocabulary.rule_shape_problem`. Whether ``symbol``
    is a known instrument is the caller's concern.
    """
    if not isinstance(rule.rule_id, int) or isinstance(rule.rule_id, bool):
        raise ValueError(f"rule_id must be an integer, got {rule.rule_id!r}")
    if not isinstance(rule.rule_name, str) or not rule.rule_name.strip():
        raise ValueError("rule_name must be a non-empty string")
    if not isinstance(rule.symbol, str) or not rule.symbol.strip():
        raise ValueError("symbol must be a non-empty string")
    condition = rule.condition
    if rule.severity not in SEVERITIES:
        known = ", ".join(SEVERITIES)
        raise ValueError(f"unknown severity {rule.severity!r}; expected one of {known}")
    if not _is_number(rule.target_value) or not math.isfinite(rule.target_value):
        raise ValueError(f"target_value must be a finite number, got {rule.target_value!r}")
    problem = rule_shape_problem(
        condition, rule.indicator, rule.other_indicator, rule.window_seconds
    )
    if problem is not None:
        raise ValueError(problem)
    window = rule.window_seconds
    if window is not None and (not _is_number(window) or not (0.0 < window <= MAX_WINDOW_SECONDS)):
        raise ValueError(
            f"window_seconds must be a number in (0, {MAX_WINDOW_SECONDS:g}], got {window!r}"
        )
    cooldown = rule.cooldown_seconds
    if not _is_number(cooldown) or not (0.0 <= cooldown < math.inf):
        raise ValueError(f"cooldown_seconds must be a finite number >= 0, got {cooldown!r}")
    return rule


def _fmt(value: float) -> str:
    """Human-sized number: cents for prices, significant digits for small values."""
    return f"{value:.2f}" if abs(value) >= 1.0 else f"{value:.4g}"


# Evaluation modes, resolved once per rule so ``evaluate`` does no string matching.
_PRICE, _PERCENT, _INDICATOR, _CROSS = range(4)


class RuleEvaluator:
    """Evaluates one validated rule tick by tick, keeping its edge and cooldown state."""

    __slots__ = (
        "_above",
        "_history",
        "_last_fire",
        "_last_t",
        "_mode",
        "_name",
        "_other",
        "_spacing",
        "_state",
        "_window",
        "rule",
    )

    def __init__(self, rule: AlertRule) -> None:
        self.rule = validate_rule(rule)
        condition = rule.condition
        self._above = condition.endswith("_above")
        if condition in PRICE_CONDITIONS:
            self._mode = _PRICE
        elif condition in PERCENT_CONDITIONS:
            self._mode = _PERCENT
        elif condition in INDICATOR_CONDITIONS:
            self._mode = _INDICATOR
        else:
            self._mode = _CROSS
        self._window = float(
            rule.window_seconds if rule.window_seconds is not None else DEFAULT_WINDOW_SECONDS
        )
        self._spacing = self._window / MAX_HISTORY_POINTS
        self._name = rule.indicator or ""
        self._other = rule.other_indicator
        self._history: deque[tuple[float, float]] = deque()
        self._state: bool | None = None
        self._last_fire: float | None = None
        self._last_t = -math.inf

    @property
    def state(self) -> bool | None:
        """The last known truth of the condition (``None`` before any known value)."""
        return self._state

    def _percent_move(self, price: float, t: float) -> float | None:
        history = self._history
        if len(history) >= 2 and t - history[-2][0] < self._spacing:
            history[-1] = (t, price)  # bounded by count: thin to window / MAX_HISTORY_POINTS
        else:
            history.append((t, price))
        horizon = t - self._window
        while len(history) > 1 and history[1][0] <= horizon:
            history.popleft()
        ref_t, ref_price = history[0]
        if ref_t > horizon:
            return None
        return (price - ref_price) / ref_price * 100.0

    def observe(self, price: float, indicators: Mapping[str, float | None]) -> None:
        """Record the condition's truth for the instrument's current state, never firing.

        Percent rules keep their history empty (their window fills from live ticks)."""
        if self._mode == _PERCENT:
            return
        value, reference = self._values(price, indicators)
        if value is not None and reference is not None:
            self._state = value > reference if self._above else value < reference

    def _values(
        self, price: float, indicators: Mapping[str, float | None]
    ) -> tuple[float | None, float | None]:
        """``(value, reference)`` of a non-percent rule for one observation."""
        if self._mode == _PRICE:
            return price, self.rule.target_value
        name = self._name
        value = price if name == "price" else indicators.get(name)
        other = self._other
        if other is None:
            return value, self.rule.target_value
        return value, price if other == "price" else indicators.get(other)

    def evaluate(
        self, price: float, indicators: Mapping[str, float | None], timestamp: datetime
    ) -> FiredAlert | None:
        """Observe one tick; return a ``FiredAlert`` iff the condition just became true."""
        return self.evaluate_at(price, indicators, timestamp, timestamp.timestamp())

    def evaluate_at(
        self,
        price: float,
        indicators: Mapping[str, float | None],
        timestamp: datetime,
        t: float,
    ) -> FiredAlert | None:
        """``evaluate`` with ``t = timestamp.timestamp()`` computed once for many rules."""
        rule = self.rule
        mode = self._mode
        if t < self._last_t:
            t = self._last_t
        self._last_t = t
        reference: float | None
        value: float | None
        if mode == _PRICE:
            value, reference = price, rule.target_value
        elif mode == _PERCENT:
            value, reference = self._percent_move(price, t), rule.target_value
        else:
            value, reference = self._values(price, indicators)
        if value is None or reference is None:
            return None
        condition = value > reference if self._above else value < reference
        previous = self._state
        self._state = condition
        if not condition or previous is not False:
            return None
        last_fire = self._last_fire
        if last_fire is not None and t - last_fire < rule.cooldown_seconds:
            return None
        self._last_fire = t
        return FiredAlert(
            rule_id=rule.rule_id,
            symbol=rule.symbol,
            rule_name=rule.rule_name,
            condition=rule.condition,
            target_value=rule.target_value,
            current_value=value,
            severity=rule.severity,
            message=self._message(value, reference),
            timestamp=timestamp,
        )

    def _message(self, value: float, reference: float) -> str:
        rule = self.rule
        direction = "above" if self._above else "below"
        if self._mode == _PRICE:
            return f"{rule.symbol} price {_fmt(value)} crossed {direction} {_fmt(reference)}"
        if self._mode == _PERCENT:
            return (
                f"{rule.symbol} price moved {value:+.2f}% in {self._window:g}s, "
                f"{direction} {reference:+.2f}%"
            )
        if self._mode == _CROSS and rule.other_indicator is not None:
            return (
                f"{rule.symbol} {rule.indicator} {_fmt(value)} crossed {direction} "
                f"{rule.other_indicator} {_fmt(reference)}"
            )
        return f"{rule.symbol} {rule.indicator} {_fmt(value)} crossed {direction} {_fmt(reference)}"
