"""Request and response bodies of the REST endpoints (pure pydantic models, validated whole).

A batch is validated before any of it is applied, so an invalid tick refuses the whole
batch and nothing is half-written. A body is validated once, here, at the boundary: an
alert rule that parses as :class:`RuleIn` is a rule the analytics engine accepts.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .messages import (
    AnalyticsUpdate,
    FiniteFloat,
    MarketData,
    SafeText,
    Symbol,
    TechnicalIndicators,
    UtcDateTime,
)
from .vocabulary import (
    DEFAULT_COOLDOWN_SECONDS,
    MAX_WINDOW_SECONDS,
    AlertCondition,
    Severity,
    rule_shape_problem,
)


class TickIn(BaseModel):
    """One tick pushed by user code; unknown fields are refused (see ``TickInLenient``)."""

    model_config = ConfigDict(extra="forbid")
    symbol: Symbol
    # Bounded so that every indicator stays finite (log returns, squares, price x volume).
    price: Annotated[FiniteFloat, Field(gt=1e-12, lt=1e12, strict=True)]
    volume: Annotated[FiniteFloat, Field(ge=0, lt=1e15, strict=True)] = 0.0
    timestamp: UtcDateTime | None = None


class TickInLenient(TickIn):
    model_config = ConfigDict(extra="ignore")


class TickBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ticks: list[TickIn] = Field(min_length=1)


class TickBatchLenient(TickBatch):
    model_config = ConfigDict(extra="ignore")
    ticks: list[TickInLenient] = Field(min_length=1)  # type: ignore[assignment]


class RuleIn(BaseModel):
    """``POST rtstream/api/alerts/rules``: types, ranges and the rule's shape (which
    condition takes which optional field) in one pydantic pass."""

    model_config = ConfigDict(extra="forbid")
    rule_name: SafeText
    symbol: Symbol
    condition: AlertCondition
    target_value: Annotated[FiniteFloat, Field(strict=True)]
    severity: Severity = "medium"
    indicator: Annotated[str, Field(max_length=40)] | None = None
    other_indicator: Annotated[str, Field(max_length=40)] | None = None
    window_seconds: (
        Annotated[FiniteFloat, Field(gt=0, le=MAX_WINDOW_SECONDS, strict=True)] | None
    ) = None
    cooldown_seconds: Annotated[FiniteFloat, Field(ge=0, le=MAX_WINDOW_SECONDS, strict=True)] = (
        DEFAULT_COOLDOWN_SECONDS
    )

    @model_validator(mode="after")
    def _shape(self) -> RuleIn:
        problem = rule_shape_problem(
            self.condition, self.indicator, self.other_indicator, self.window_seconds
        )
        if problem is not None:
            raise ValueError(problem)
        return self


# --------------------------------------------------------------------------- response bodies

#: ``kind`` of ``GET rtstream/api/instruments/{symbol}/history``.
HistoryKind = Literal["market_data", "technical_indicators", "analytics"]
HistoryMessage = Annotated[
    MarketData | TechnicalIndicators | AnalyticsUpdate, Field(discriminator="message_type")
]


class InstrumentHistory(BaseModel):
    """``GET rtstream/api/instruments/{symbol}/history``: one page, oldest first.

    ``messages`` are the topic's streamed messages as sent on the WebSocket (each with its
    ``seq`` and ``timestamp``); ``seq`` is the topic's last seq when the page was read and
    ``epoch`` the server's (seqs are comparable within one epoch only)."""

    model_config = ConfigDict(extra="ignore")
    symbol: str
    kind: HistoryKind
    topic: str
    epoch: str
    seq: int = Field(ge=0)
    messages: list[HistoryMessage]
