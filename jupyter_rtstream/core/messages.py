"""Protocol v1 messages: pydantic models for both directions and the discriminated unions.

Every message has ``message_type`` (the union's discriminator), ``version`` and ``timestamp``
(RFC 3339, UTC, ``Z``). Server payloads sit under ``data``; client requests keep their fields
at the top level. Unknown fields are ignored so that a newer ``1.x`` peer can add fields
without breaking an older one; another major version is refused (see :mod:`.codec`).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    TypeAdapter,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .errors import ErrorCode
from .vocabulary import (
    ALERT_CONDITIONS,
    ALL_SYMBOLS,
    CLIENT_MESSAGE_TYPES,
    SERVER_MESSAGE_TYPES,
    SEVERITIES,
    STREAMED_TYPE,
    SUBSCRIPTION_TYPES,
    TRENDS,
    Action,
    AlertCondition,
    ClientMessageType,
    FeedState,
    ServerMessageType,
    Severity,
    StreamedMessageType,
    SubscriptionType,
    Trend,
    VolatilityRegime,
    normalize_symbol,
    rule_shape_problem,
    split_topic,
    topic_for,
)

# fmt: off
__all__ = [  # noqa: RUF022 (grouped, not sorted)
    # the vocabulary, declared in .vocabulary and re-exported next to the models
    "ALERT_CONDITIONS", "ALL_SYMBOLS", "CLIENT_MESSAGE_TYPES", "SERVER_MESSAGE_TYPES",
    "SEVERITIES", "STREAMED_TYPE", "SUBSCRIPTION_TYPES", "TRENDS", "Action", "AlertCondition",
    "ClientMessageType", "ServerMessageType", "Severity", "StreamedMessageType",
    "SubscriptionType", "Trend", "VolatilityRegime", "normalize_symbol", "rule_shape_problem",
    "split_topic", "topic_for",
    # the models and their types
    "PROTOCOL_MAJOR", "PROTOCOL_VERSION", "PROTOCOL_VERSIONS", "SUBPROTOCOL",
    "SUBPROTOCOL_PREFIX", "Ack", "AckPayload", "Alert", "AlertPayload", "AnalysisResults",
    "AnalyticsUpdate", "AnalyticsUpdatePayload", "AnyMessage", "ClientMessage",
    "ConnectionStatus", "ConnectionStatusPayload", "Epoch", "Error", "ErrorPayload",
    "FiniteFloat", "MarketData", "MarketDataPayload", "Ping", "RequestId", "SafeText",
    "ServerMessage", "StreamedMessage", "Subscribe", "Symbol", "SymbolOrAll",
    "TechnicalIndicators", "TechnicalIndicatorsPayload", "Unsubscribe", "UtcDateTime",
    "Version", "client_message_adapter", "format_timestamp", "json_schema",
    "server_message_adapter", "utc_now", "utf8_safe",
]
# fmt: on


PROTOCOL_VERSION = "1.0"
PROTOCOL_MAJOR = 1
#: Versions this implementation speaks, advertised in ``connection_status`` and the status API.
PROTOCOL_VERSIONS: tuple[str, ...] = (PROTOCOL_VERSION,)
#: WebSocket subprotocol a client may offer (like Jupyter's ``v1.kernel.websocket.jupyter.org``).
SUBPROTOCOL = "rtstream.v1"
SUBPROTOCOL_PREFIX = "rtstream.v"

_VERSION_RE = re.compile(r"1(\.\d{1,6})?")
_SYMBOL_RE = re.compile(r"[A-Z0-9][A-Z0-9._\-^=]{0,15}")


def utc_now() -> datetime:
    """Timezone-aware UTC now (never ``datetime.utcnow()``, which is naive)."""
    return datetime.now(timezone.utc)


def _to_utc(value: datetime) -> datetime:
    # Naive inputs are taken as UTC: CSV files and user code rarely carry an offset.
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def format_timestamp(value: datetime) -> str:
    """RFC 3339 in UTC with a ``Z`` suffix."""
    return _to_utc(value).isoformat().replace("+00:00", "Z")


UtcDateTime = Annotated[
    datetime,
    AfterValidator(_to_utc),
    PlainSerializer(format_timestamp, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _check_version(value: str) -> str:
    if not _VERSION_RE.fullmatch(value):
        raise PydanticCustomError(
            "unsupported_version",
            "protocol version {version} is not supported (this server speaks 1.x)",
            {"version": value},
        )
    return value


Version = Annotated[str, AfterValidator(_check_version)]


def _normalize_symbol(value: str) -> str:
    value = normalize_symbol(value)
    if value != ALL_SYMBOLS and not _SYMBOL_RE.fullmatch(value):
        raise ValueError(
            "symbol must be 1-16 characters of A-Z, 0-9, '.', '_', '-', '^', '=' (or '*')"
        )
    return value


def _check_instrument_symbol(value: str) -> str:
    if value == ALL_SYMBOLS:
        raise ValueError("'*' is only valid for alert subscriptions")
    return value


#: A ticker symbol, upper-cased; ``*`` (all symbols) allowed where a model says so.
SymbolOrAll = Annotated[str, Field(max_length=16), AfterValidator(_normalize_symbol)]
Symbol = Annotated[SymbolOrAll, AfterValidator(_check_instrument_symbol)]


def utf8_safe(value: str) -> str:
    """Refuse lone surrogates (valid in JSON escapes, not encodable as UTF-8 on the way out)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("string is not valid Unicode (lone surrogate)") from None
    return value


def _coerce_request_id(value: Any) -> Any:
    # Request ids are opaque strings; accept integers (common in hand-written clients).
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


RequestId = Annotated[
    str, BeforeValidator(_coerce_request_id), Field(max_length=128), AfterValidator(utf8_safe)
]
Epoch = Annotated[
    str, BeforeValidator(_coerce_request_id), Field(max_length=64), AfterValidator(utf8_safe)
]
#: Free text from users (rule names): bounded, valid Unicode.
SafeText = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(utf8_safe)]


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]


class _Model(BaseModel):
    # extra="ignore": unknown fields of a newer 1.x minor must not break us.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


# --------------------------------------------------------------------------- payloads


class MarketDataPayload(_Model):
    instrument_id: int
    symbol: str
    price: FiniteFloat
    volume: FiniteFloat
    timestamp: UtcDateTime
    change_percent: FiniteFloat = 0.0


class TechnicalIndicatorsPayload(_Model):
    instrument_id: int
    symbol: str
    indicators: dict[str, float | None]
    calculated_at: UtcDateTime


class AnalysisResults(_Model):
    """Market analysis; ``extra="allow"`` keeps additional figures a newer server sends."""

    model_config = ConfigDict(extra="allow")
    trend: Trend = "neutral"
    momentum: float | None = None
    volatility_regime: VolatilityRegime | None = None
    session_high: float | None = None
    session_low: float | None = None
    change_percent: float | None = None


class AnalyticsUpdatePayload(_Model):
    instrument_id: int
    symbol: str
    analysis_type: str = "market_analysis"
    results: AnalysisResults
    calculation_time: UtcDateTime
    next_update: UtcDateTime | None = None


class AlertPayload(_Model):
    alert_id: int
    rule_id: int
    symbol: str
    rule_name: str
    condition: AlertCondition
    target_value: float
    current_value: float
    severity: Severity
    message: str
    timestamp: UtcDateTime


class ConnectionStatusPayload(_Model):
    client_id: str
    connected_at: UtcDateTime
    subscriptions: list[str]
    last_heartbeat: UtcDateTime
    epoch: str
    protocol_versions: list[str] = Field(default_factory=lambda: list(PROTOCOL_VERSIONS))
    status: Literal["connected"] = "connected"
    heartbeat_interval: float | None = None
    #: Messages conflated (latest-wins) for this client because it lagged, since it connected.
    conflated: int = 0
    server_version: str | None = None
    #: ``"degraded"`` while the server cannot reach the shared feed (Redis bus).
    feed_state: FeedState = "ok"


class AckPayload(_Model):
    request_id: str | None = None
    action: Action
    topic: str | None = None
    subscriptions: list[str] = Field(default_factory=list)
    recovered: bool | None = None
    #: Subscribe only: the topic's last ``seq`` when the ack was built. The snapshot or
    #: replay that follows the ack has seqs up to it; everything published later has greater
    #: ones, so a client that has seen nothing on the topic (typical of alerts) can resume
    #: exactly from here.
    seq: int | None = Field(default=None, ge=0)
    #: Subscribe to an alert topic only: the newest ``alert_id`` in the server's alert
    #: history at that moment (where ``GET rtstream/api/alerts?since=`` catches up from).
    last_alert_id: int | None = Field(default=None, ge=0)
    #: With ``last_alert_id``: the identity of the alert store those ids belong to. Ids are
    #: comparable only within one store; another ``store_id`` means a replaced store.
    store_id: str | None = Field(default=None, pattern=r"^[0-9A-Za-z_-]{1,64}$")


class ErrorPayload(_Model):
    error_code: ErrorCode
    error_message: str
    request_id: str | None = None
    timestamp: UtcDateTime = Field(default_factory=utc_now)


# --------------------------------------------------------------------------- server → client


class _ServerMessage(_Model):
    version: Version = PROTOCOL_VERSION
    timestamp: UtcDateTime = Field(default_factory=utc_now)


class _StreamedMessage(_ServerMessage):
    topic: str
    #: +1 per message on ``topic``, assigned by the hub; never reused within an epoch.
    seq: int = 0


class MarketData(_StreamedMessage):
    message_type: Literal["market_data"] = "market_data"
    data: MarketDataPayload


class TechnicalIndicators(_StreamedMessage):
    message_type: Literal["technical_indicators"] = "technical_indicators"
    data: TechnicalIndicatorsPayload


class AnalyticsUpdate(_StreamedMessage):
    message_type: Literal["analytics_update"] = "analytics_update"
    data: AnalyticsUpdatePayload


class Alert(_StreamedMessage):
    message_type: Literal["alert"] = "alert"
    data: AlertPayload


class ConnectionStatus(_ServerMessage):
    message_type: Literal["connection_status"] = "connection_status"
    data: ConnectionStatusPayload


class Ack(_ServerMessage):
    message_type: Literal["ack"] = "ack"
    data: AckPayload


class Error(_ServerMessage):
    message_type: Literal["error"] = "error"
    data: ErrorPayload


#: The messages streamed on topics (carry ``topic`` and ``seq``); what the hub publishes.
StreamedMessage: TypeAlias = MarketData | TechnicalIndicators | AnalyticsUpdate | Alert
#: The server's messages outside topics: greeting/heartbeat, request answers, refusals.
ControlMessage: TypeAlias = ConnectionStatus | Ack | Error
#: Every server → client message, discriminated by ``message_type``.
ServerMessage: TypeAlias = Annotated[
    StreamedMessage | ControlMessage, Field(discriminator="message_type")
]

# --------------------------------------------------------------------------- client → server


class _ClientMessage(_Model):
    version: Version = PROTOCOL_VERSION
    request_id: RequestId | None = None
    timestamp: UtcDateTime | None = None


class _TopicRequest(_ClientMessage):
    subscription_type: SubscriptionType
    symbol: SymbolOrAll | None = None
    instrument_id: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _needs_target(self) -> _TopicRequest:
        if self.symbol is None and self.instrument_id is None:
            raise ValueError("give 'symbol' or 'instrument_id'")
        if self.symbol == ALL_SYMBOLS and self.subscription_type != "alerts":
            raise ValueError("symbol '*' is only valid with subscription_type 'alerts'")
        return self


class Subscribe(_TopicRequest):
    message_type: Literal["subscribe"] = "subscribe"
    #: Last ``seq`` the client saw on this topic; replay everything after it.
    resume_from: int | None = Field(default=None, ge=0)
    #: Server epoch the ``resume_from`` belongs to (from ``connection_status``).
    epoch: Epoch | None = None


class Unsubscribe(_TopicRequest):
    message_type: Literal["unsubscribe"] = "unsubscribe"


class Ping(_ClientMessage):
    message_type: Literal["ping"] = "ping"


#: Every client → server message, discriminated by ``message_type``.
ClientMessage: TypeAlias = Annotated[
    Subscribe | Unsubscribe | Ping, Field(discriminator="message_type")
]
AnyMessage: TypeAlias = Annotated[
    MarketData
    | TechnicalIndicators
    | AnalyticsUpdate
    | Alert
    | ConnectionStatus
    | Ack
    | Error
    | Subscribe
    | Unsubscribe
    | Ping,
    Field(discriminator="message_type"),
]

client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
server_message_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)


def json_schema() -> dict[str, Any]:
    """The protocol as one JSON Schema (draft 2020-12) with every message type in ``$defs``."""
    adapter: TypeAdapter[Any] = TypeAdapter(AnyMessage)
    schema = adapter.json_schema(ref_template="#/$defs/{model}", mode="serialization")
    defs = schema.pop("$defs")
    for definition in defs.values():
        # The discriminator has a default in Python, but on the wire it is mandatory.
        if "message_type" in definition.get("properties", {}):
            required = definition.setdefault("required", [])
            if "message_type" not in required:
                required.insert(0, "message_type")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://jupyter-rtstream.readthedocs.io/schema/protocol-v1.json",
        "title": "jupyter-rtstream protocol",
        "description": (
            f"Wire protocol v{PROTOCOL_VERSION}: one JSON object per WebSocket text frame. "
            "Server messages: " + ", ".join(SERVER_MESSAGE_TYPES) + ". "
            "Client messages: " + ", ".join(CLIENT_MESSAGE_TYPES) + "."
        ),
        "x-protocol-version": PROTOCOL_VERSION,
        "x-server-message-types": list(SERVER_MESSAGE_TYPES),
        "x-client-message-types": list(CLIENT_MESSAGE_TYPES),
        **schema,
        "$defs": defs,
    }
