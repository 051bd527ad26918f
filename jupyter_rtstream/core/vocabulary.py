"""The protocol's vocabulary, declared once: every ``Literal`` of the wire format, the tuples
derived from them, topic names and symbol normalisation.

Standard library only (no pydantic), so the pure analytics package and the widgets can
import it without pulling in the models. Models (:mod:`.messages`), codec, hub, session,
the alert rules (:mod:`jupyter_rtstream.analytics.alerts`), widgets and benchmark all take
their names from here; a tuple is always ``get_args`` of its ``Literal``, never a second
list to keep in step.
"""

from __future__ import annotations

from typing import Literal, get_args

#: What a client subscribes to; a topic is ``"{subscription_type}:{SYMBOL}"``.
SubscriptionType = Literal["market_data", "technical_indicators", "analytics", "alerts"]
SUBSCRIPTION_TYPES: tuple[SubscriptionType, ...] = get_args(SubscriptionType)

#: Server messages streamed on topics (they carry ``topic`` and ``seq``).
StreamedMessageType = Literal["market_data", "technical_indicators", "analytics_update", "alert"]
#: Control messages the server sends outside topics.
ControlMessageType = Literal["connection_status", "ack", "error"]
ServerMessageType = Literal[StreamedMessageType, ControlMessageType]
SERVER_MESSAGE_TYPES: tuple[ServerMessageType, ...] = (
    *get_args(StreamedMessageType),
    *get_args(ControlMessageType),
)
#: Client requests; an ``ack``'s ``action`` names the request it answers.
ClientMessageType = Literal["subscribe", "unsubscribe", "ping"]
CLIENT_MESSAGE_TYPES: tuple[ClientMessageType, ...] = get_args(ClientMessageType)
Action = ClientMessageType

#: Subscription type → the server message type streamed on its topics.
STREAMED_TYPE: dict[SubscriptionType, StreamedMessageType] = {
    "market_data": "market_data",
    "technical_indicators": "technical_indicators",
    "analytics": "analytics_update",
    "alerts": "alert",
}

Severity = Literal["low", "medium", "high"]
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
AlertCondition = Literal[
    "price_above",
    "price_below",
    "percent_change_above",
    "percent_change_below",
    "indicator_above",
    "indicator_below",
    "crosses_above",
    "crosses_below",
]
ALERT_CONDITIONS: tuple[AlertCondition, ...] = get_args(AlertCondition)

Trend = Literal["bullish", "bearish", "neutral"]
TRENDS: tuple[Trend, ...] = get_args(Trend)
VolatilityRegime = Literal["low", "normal", "high"]

#: Health of the market feed as a server sees it: ``"degraded"`` while a server on the Redis
#: bus cannot reach Redis (``feed.state`` in the status API, ``feed_state`` in
#: ``connection_status``).
FeedState = Literal["ok", "degraded"]
VOLATILITY_REGIMES: tuple[VolatilityRegime, ...] = get_args(VolatilityRegime)

#: The symbol of an alert subscription to every symbol (``alerts:*``).
ALL_SYMBOLS = "*"


def normalize_symbol(symbol: str) -> str:
    """The canonical spelling of a ticker symbol: surrounding blanks dropped, upper case.

    What clients, widgets and the server's registry all key symbols by (the protocol's
    ``Symbol`` type validates the result further).
    """
    return symbol.strip().upper()


def topic_for(subscription_type: str, symbol: str) -> str:
    """Topic name ``"{subscription_type}:{SYMBOL}"``, e.g. ``"market_data:AAPL"``."""
    return f"{subscription_type}:{symbol}"


def split_topic(topic: str) -> tuple[str, str]:
    """Inverse of :func:`topic_for`."""
    kind, _, symbol = topic.partition(":")
    return kind, symbol


# --------------------------------------------------------------------------- alert rules

#: Keys of ``technical_indicators.data.indicators`` (docs/analytics.md), in wire order.
IndicatorName = Literal[
    "sma_20",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd",
    "macd_signal",
    "macd_hist",
    "bb_upper",
    "bb_middle",
    "bb_lower",
    "vwap",
    "volatility_20",
]
INDICATOR_KEYS: tuple[IndicatorName, ...] = get_args(IndicatorName)
#: Names a rule's ``indicator``/``other_indicator`` may take: the indicators and the price.
RULE_INDICATORS: frozenset[str] = frozenset(INDICATOR_KEYS) | {"price"}

PRICE_CONDITIONS: frozenset[AlertCondition] = frozenset({"price_above", "price_below"})
PERCENT_CONDITIONS: frozenset[AlertCondition] = frozenset(
    {"percent_change_above", "percent_change_below"}
)
INDICATOR_CONDITIONS: frozenset[AlertCondition] = frozenset({"indicator_above", "indicator_below"})
CROSS_CONDITIONS: frozenset[AlertCondition] = frozenset({"crosses_above", "crosses_below"})

#: Longest percent-move window a rule may ask for (one day): the window is history the
#: server must keep per rule, so it is bounded like every other input.
MAX_WINDOW_SECONDS = 86_400.0
#: ``cooldown_seconds`` of a rule that does not say: a price oscillating around its line
#: fires at most once a minute per rule instead of on every other tick (alert storms).
DEFAULT_COOLDOWN_SECONDS = 60.0


def rule_shape_problem(
    condition: str,
    indicator: str | None,
    other_indicator: str | None,
    window_seconds: float | None,
) -> str | None:
    """Why these fields do not make a rule for ``condition`` (None when they do).

    The grammar of a rule, in one place: the REST body model checks it while parsing and
    the analytics' ``validate_rule`` checks it for rules built in Python.
    """
    if condition not in ALERT_CONDITIONS:
        known = ", ".join(sorted(ALERT_CONDITIONS))
        return f"unknown condition {condition!r}; expected one of {known}"
    if condition in INDICATOR_CONDITIONS or condition in CROSS_CONDITIONS:
        if indicator is None:
            return f"condition {condition!r} requires an indicator"
        if indicator not in RULE_INDICATORS:
            return (
                f"unknown indicator {indicator!r}; "
                f"expected one of {', '.join(sorted(RULE_INDICATORS))}"
            )
    elif indicator is not None:
        return f"condition {condition!r} does not take an indicator"
    if other_indicator is not None:
        if condition not in CROSS_CONDITIONS:
            return f"condition {condition!r} does not take an other_indicator"
        if other_indicator not in RULE_INDICATORS:
            return (
                f"unknown other_indicator {other_indicator!r}; "
                f"expected one of {', '.join(sorted(RULE_INDICATORS))}"
            )
        if other_indicator == indicator:
            return "indicator and other_indicator must differ"
    if window_seconds is not None and condition not in PERCENT_CONDITIONS:
        return f"condition {condition!r} does not take window_seconds"
    if window_seconds is not None and window_seconds > MAX_WINDOW_SECONDS:
        return f"window_seconds must be at most {MAX_WINDOW_SECONDS:g} (one day)"
    return None
