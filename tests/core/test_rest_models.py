"""The REST body of an alert rule is validated in one pydantic pass: types, vocabulary and
the rule's shape, with the same wording the analytics engine uses for rules built in Python."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from jupyter_rtstream.analytics import AlertRule, validate_rule
from jupyter_rtstream.core.codec import summarize
from jupyter_rtstream.core.rest import RuleIn

RULE: dict[str, Any] = {
    "rule_name": "breakout",
    "symbol": " aapl ",
    "condition": "crosses_above",
    "target_value": 0.0,
    "indicator": "macd",
    "other_indicator": "macd_signal",
}


def test_a_good_rule_parses_into_what_the_engine_accepts() -> None:
    spec = RuleIn.model_validate(RULE)
    assert spec.symbol == "AAPL" and spec.severity == "medium"
    rule = AlertRule(rule_id=1, **spec.model_dump())
    assert validate_rule(rule) is rule


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"condition": "indicator_above", "indicator": None}, "requires an indicator"),
        ({"indicator": "rsi"}, "unknown indicator 'rsi'"),
        ({"other_indicator": "macd"}, "must differ"),
        ({"condition": "price_above", "indicator": None}, "does not take an other_indicator"),
        ({"condition": "price_above", "other_indicator": None}, "does not take an indicator"),
        (
            {
                "condition": "price_above",
                "indicator": None,
                "other_indicator": None,
                "window_seconds": 5.0,
            },
            "does not take window_seconds",
        ),
    ],
)
def test_a_badly_shaped_rule_is_refused_while_parsing(change: dict[str, Any], why: str) -> None:
    body = {**RULE, **change}
    with pytest.raises(ValidationError) as exc:
        RuleIn.model_validate(body)
    assert why in summarize(exc.value)
    fields = {k: v for k, v in body.items() if v is not None}
    fields.update(symbol="AAPL", severity="medium")
    with pytest.raises(ValueError, match=why):  # the same words for a rule built in Python
        validate_rule(AlertRule(rule_id=1, **fields))
