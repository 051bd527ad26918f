"""The whole per-tick analytics pipeline for many instruments, without I/O.

The server feeds ticks in and publishes what comes out; keeping this pure lets the
pipeline be tested, replayed and benchmarked with plain function calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .alerts import AlertRule, FiredAlert, RuleEvaluator, validate_rule
from .analysis import MarketAnalyzer
from .indicator_set import IndicatorSet, check_tick

__all__ = ["AnalyticsEngine", "TickResult"]


@dataclass(slots=True)
class TickResult:
    """What one tick produced: the indicator values after it and the alerts it fired."""

    indicators: dict[str, float | None]
    alerts: list[FiredAlert] = field(default_factory=list)


class _Instrument:
    """Everything the engine keeps for one symbol."""

    __slots__ = ("analyzer", "evaluators", "indicators", "last")

    def __init__(self) -> None:
        self.indicators = IndicatorSet()
        self.analyzer = MarketAnalyzer()
        self.evaluators: dict[int, RuleEvaluator] = {}
        #: ``(price, indicator values)`` after the latest tick: the state a new rule starts from.
        self.last: tuple[float, dict[str, float | None]] | None = None


class AnalyticsEngine:
    """Per-symbol indicators, market analysis and alert rules, updated by ``on_tick``.

    Rules may name a symbol that has not ticked yet: they are kept and get their evaluator
    when the symbol's first tick arrives (which, as for any rule, only arms them). A rule
    added to a symbol that has ticked starts from its current state, and warm-up ticks
    (``evaluate_rules=False``) keep every rule's state current without firing, so the first
    live crossing is never missed.
    """

    __slots__ = ("_instruments", "_rules")

    def __init__(self) -> None:
        self._instruments: dict[str, _Instrument] = {}
        self._rules: dict[int, AlertRule] = {}

    def on_tick(
        self,
        symbol: str,
        price: float,
        volume: float,
        timestamp: datetime,
        *,
        evaluate_rules: bool = True,
    ) -> TickResult:
        """Apply one tick; raise ``ValueError`` (state untouched) if price/volume are bad.

        ``evaluate_rules=False`` updates indicators and analysis only, for warming an
        instrument up from history without firing alerts about the past (rules see none of
        those ticks, so a percent-move rule's window fills from live ticks).
        """
        check_tick(price, volume)
        instrument = self._instruments.get(symbol)
        if instrument is None:
            instrument = self._register(symbol)
        values = instrument.indicators.apply(price, volume)
        instrument.analyzer.apply(price, timestamp)
        instrument.last = (price, values)
        alerts: list[FiredAlert] = []
        if instrument.evaluators:
            if evaluate_rules:
                t = timestamp.timestamp()
                for evaluator in instrument.evaluators.values():
                    fired = evaluator.evaluate_at(price, values, timestamp, t)
                    if fired is not None:
                        alerts.append(fired)
            else:
                for evaluator in instrument.evaluators.values():
                    evaluator.observe(price, values)
        return TickResult(values, alerts)

    def _register(self, symbol: str) -> _Instrument:
        instrument = _Instrument()
        for rule in self._rules.values():
            if rule.symbol == symbol:
                instrument.evaluators[rule.rule_id] = RuleEvaluator(rule)
        self._instruments[symbol] = instrument
        return instrument

    def add_rule(self, rule: AlertRule) -> None:
        """Validate and install ``rule``; ``ValueError`` if invalid or its id is taken."""
        validate_rule(rule)
        if rule.rule_id in self._rules:
            raise ValueError(f"rule_id {rule.rule_id} already exists")
        self._rules[rule.rule_id] = rule
        instrument = self._instruments.get(rule.symbol)
        if instrument is not None:
            evaluator = RuleEvaluator(rule)
            if instrument.last is not None:
                evaluator.observe(*instrument.last)
            instrument.evaluators[rule.rule_id] = evaluator

    def rule_count(self) -> int:
        return len(self._rules)

    def remove_rule(self, rule_id: int) -> bool:
        """Remove a rule and its state; return whether it existed."""
        rule = self._rules.pop(rule_id, None)
        if rule is None:
            return False
        instrument = self._instruments.get(rule.symbol)
        if instrument is not None:
            instrument.evaluators.pop(rule_id, None)
        return True

    def rules(self) -> list[AlertRule]:
        """All installed rules, by ``rule_id``."""
        return [self._rules[rule_id] for rule_id in sorted(self._rules)]

    def symbols(self) -> list[str]:
        """Symbols that have ticked, in order of their first tick."""
        return list(self._instruments)

    def indicators(self, symbol: str) -> dict[str, float | None]:
        """The symbol's latest indicator values; ``KeyError`` if it never ticked."""
        return self._instruments[symbol].indicators.snapshot()

    def analysis(self, symbol: str) -> dict[str, float | str | None]:
        """The symbol's market analysis results; ``KeyError`` if it never ticked."""
        return self._instruments[symbol].analyzer.results()
