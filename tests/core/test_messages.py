"""Protocol v1 models: timestamps, symbols, request ids, round trips, unknown fields."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from jupyter_rtstream.core.codec import decode_client, decode_server, encode
from jupyter_rtstream.core.errors import ProtocolError
from jupyter_rtstream.core.messages import (
    CLIENT_MESSAGE_TYPES,
    PROTOCOL_VERSION,
    SERVER_MESSAGE_TYPES,
    STREAMED_TYPE,
    SUBSCRIPTION_TYPES,
    MarketDataPayload,
    Ping,
    Subscribe,
    Symbol,
    SymbolOrAll,
    Unsubscribe,
    UtcDateTime,
    client_message_adapter,
    format_timestamp,
    split_topic,
    topic_for,
    utc_now,
)

from ._samples import T0, client_samples, market_data, server_samples

RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def _timestamps(obj: Any) -> list[str]:
    """Every value of a key named like a timestamp, anywhere in a decoded JSON document."""
    found: list[str] = []
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key in {
                "timestamp",
                "calculated_at",
                "calculation_time",
                "next_update",
                "connected_at",
                "last_heartbeat",
            } and isinstance(value, str):
                found.append(value)
            else:
                found.extend(_timestamps(value))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(_timestamps(item))
    return found


# --------------------------------------------------------------------------- timestamps


def test_utc_now_is_timezone_aware_utc() -> None:
    now = utc_now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "2024-01-02T03:04:05Z"),
        (datetime(2024, 1, 2, 3, 4, 5, 6000, tzinfo=timezone.utc), "2024-01-02T03:04:05.006000Z"),
        # another offset is converted to UTC
        (
            datetime(2024, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            "2024-01-02T03:04:05Z",
        ),
        (
            datetime(2024, 1, 1, 22, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
            "2024-01-02T03:04:05Z",
        ),
        # naive input is taken as UTC (not as local time)
        (datetime(2024, 1, 2, 3, 4, 5), "2024-01-02T03:04:05Z"),
    ],
)
def test_format_timestamp_is_rfc3339_utc_with_z(value: datetime, expected: str) -> None:
    assert format_timestamp(value) == expected
    assert RFC3339_UTC.match(format_timestamp(value))


def test_utc_datetime_validation_normalizes_to_aware_utc() -> None:
    adapter: TypeAdapter[datetime] = TypeAdapter(UtcDateTime)
    naive = adapter.validate_python(datetime(2024, 1, 2, 3, 4, 5))
    assert naive == datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    assert naive.tzinfo is timezone.utc
    shifted = adapter.validate_json('"2024-01-02T05:04:05+02:00"')
    assert shifted.tzinfo is timezone.utc
    assert (shifted.hour, shifted.minute) == (3, 4)
    assert adapter.validate_json('"2024-01-02T03:04:05"').tzinfo is timezone.utc
    assert adapter.dump_json(shifted) == b'"2024-01-02T03:04:05Z"'


def test_naive_payload_timestamp_serializes_as_utc() -> None:
    payload = MarketDataPayload(
        instrument_id=1,
        symbol="AAPL",
        price=1.0,
        volume=1.0,
        timestamp=datetime(2024, 6, 1, 9, 30),
    )
    assert payload.timestamp.tzinfo is timezone.utc
    assert json.loads(payload.model_dump_json())["timestamp"] == "2024-06-01T09:30:00Z"


@pytest.mark.parametrize("message", server_samples(), ids=lambda m: m.message_type)
def test_every_timestamp_on_the_wire_is_rfc3339_utc_z(message: Any) -> None:
    doc = json.loads(encode(message))
    stamps = _timestamps(doc)
    assert stamps, "expected at least the envelope timestamp"
    for stamp in stamps:
        assert RFC3339_UTC.match(stamp), stamp


def test_default_envelope_timestamp_is_now_in_utc() -> None:
    before = utc_now()
    doc = json.loads(encode(Ping()))
    after = utc_now()
    assert doc["timestamp"] is None  # client timestamps are optional
    msg = market_data()
    msg_default = type(msg)(topic=msg.topic, data=msg.data)
    stamp = json.loads(encode(msg_default))["timestamp"]
    assert stamp.endswith("Z")
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    assert before <= parsed <= after + timedelta(seconds=1)


# --------------------------------------------------------------------------- symbols


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("aapl", "AAPL"),
        ("AAPL", "AAPL"),
        (" msft ", "MSFT"),
        ("goog\n", "GOOG"),
        ("brk.b", "BRK.B"),
        ("^gspc", None),
    ],
)
def test_symbols_are_upper_cased(raw: str, normalized: str | None) -> None:
    if normalized is None:  # must start with a letter or digit
        with pytest.raises(ValidationError):
            Subscribe(subscription_type="market_data", symbol=raw)
        return
    assert Subscribe(subscription_type="market_data", symbol=raw).symbol == normalized
    assert Unsubscribe(subscription_type="analytics", symbol=raw).symbol == normalized


@pytest.mark.parametrize(
    "raw", ["", "AA PL", "AAPL!", "A" * 17, "$AAPL", "-AAPL", "ÄPPLE", "AA\nPL", "a/b"]
)
def test_invalid_symbols_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        Subscribe(subscription_type="market_data", symbol=raw)
    with pytest.raises(ValidationError):
        TypeAdapter(SymbolOrAll).validate_python(raw)


def test_star_is_only_valid_for_alerts() -> None:
    assert Subscribe(subscription_type="alerts", symbol="*").symbol == "*"
    assert Unsubscribe(subscription_type="alerts", symbol="*").symbol == "*"
    for kind in ("market_data", "technical_indicators", "analytics"):
        with pytest.raises(ValidationError, match="only valid"):
            Subscribe(subscription_type=kind, symbol="*")
    # The strict Symbol type never takes '*'; SymbolOrAll does.
    assert TypeAdapter(SymbolOrAll).validate_python("*") == "*"
    assert TypeAdapter(Symbol).validate_python("nvda") == "NVDA"
    with pytest.raises(ValidationError):
        TypeAdapter(Symbol).validate_python("*")


def test_topic_request_needs_symbol_or_instrument_id() -> None:
    with pytest.raises(ValidationError, match="symbol"):
        Subscribe(subscription_type="market_data")
    assert Subscribe(subscription_type="market_data", instrument_id=3).instrument_id == 3
    with pytest.raises(ValidationError):
        Subscribe(subscription_type="market_data", instrument_id=0)
    with pytest.raises(ValidationError):
        Subscribe(subscription_type="market_data", symbol="AAPL", resume_from=-1)
    with pytest.raises(ValidationError):
        Subscribe.model_validate({"subscription_type": "quotes", "symbol": "AAPL"})


# --------------------------------------------------------------------------- request ids


def test_integer_request_id_becomes_string() -> None:
    assert Ping.model_validate({"request_id": 42}).request_id == "42"
    decoded = decode_client('{"message_type":"ping","request_id":7}')
    assert isinstance(decoded, Ping)
    assert decoded.request_id == "7"
    sub = decode_client(
        '{"message_type":"subscribe","subscription_type":"market_data","symbol":"AAPL",'
        '"request_id":0,"resume_from":3,"epoch":12345}'
    )
    assert isinstance(sub, Subscribe)
    assert (sub.request_id, sub.epoch) == ("0", "12345")


@pytest.mark.parametrize("bad", [True, 1.5, [1], {"a": 1}, "x" * 129])
def test_bad_request_ids_are_rejected(bad: Any) -> None:
    with pytest.raises(ValidationError):
        Ping(request_id=bad)


def test_client_version_defaults_to_current() -> None:
    assert Ping().version == PROTOCOL_VERSION == "1.0"
    decoded = decode_client('{"message_type":"ping"}')
    assert isinstance(decoded, Ping)
    assert decoded.version == "1.0"


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("message", server_samples(), ids=lambda m: m.message_type)
def test_every_server_message_round_trips(message: Any) -> None:
    text = encode(message)
    decoded = decode_server(text)
    assert not isinstance(decoded, ProtocolError), decoded
    assert type(decoded) is type(message)
    assert decoded == message
    assert encode(decoded) == text


def test_samples_cover_every_message_type() -> None:
    assert {m.message_type for m in server_samples()} == set(SERVER_MESSAGE_TYPES)
    assert {m.message_type for m in client_samples()} == set(CLIENT_MESSAGE_TYPES)
    assert len(SERVER_MESSAGE_TYPES) + len(CLIENT_MESSAGE_TYPES) == 10


@pytest.mark.parametrize("message", client_samples(), ids=lambda m: m.message_type)
def test_every_client_message_round_trips(message: Any) -> None:
    decoded = decode_client(encode(message))
    assert decoded == message


def test_analysis_results_keep_figures_of_a_newer_server() -> None:
    text = json.dumps(
        {
            "message_type": "analytics_update",
            "topic": "analytics:AAPL",
            "seq": 1,
            "timestamp": "2024-01-01T00:00:00Z",
            "data": {
                "instrument_id": 1,
                "symbol": "AAPL",
                "results": {"trend": "bearish", "skew": -0.5},
                "calculation_time": "2024-01-01T00:00:00Z",
            },
        }
    )
    decoded = decode_server(text)
    assert decoded.data.results.trend == "bearish"
    assert decoded.data.results.model_extra == {"skew": -0.5}


# --------------------------------------------------------------------------- unknown fields


def test_unknown_fields_are_ignored_client_side() -> None:
    decoded = decode_client(
        '{"message_type":"subscribe","version":"1.7","subscription_type":"alerts",'
        '"symbol":"aapl","request_id":"r","new_minor_field":{"x":[1,2]},"priority":9}'
    )
    assert isinstance(decoded, Subscribe)
    assert decoded.symbol == "AAPL"
    assert decoded.version == "1.7"
    assert not hasattr(decoded, "new_minor_field")
    assert "priority" not in decoded.model_dump()


def test_unknown_fields_are_ignored_server_side() -> None:
    doc = json.loads(encode(market_data(seq=5)))
    doc["compression"] = "none"
    doc["data"]["bid"] = 101.0
    doc["version"] = "1.3"
    decoded = decode_server(json.dumps(doc))
    assert not isinstance(decoded, ProtocolError)
    assert decoded.seq == 5
    assert "bid" not in decoded.data.model_dump()
    assert "compression" not in decoded.model_dump()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_prices_must_be_finite(value: float) -> None:
    with pytest.raises(ValidationError, match="finite"):
        MarketDataPayload(instrument_id=1, symbol="AAPL", price=value, volume=1.0, timestamp=T0)


# --------------------------------------------------------------------------- topics


def test_topic_for_and_split_topic() -> None:
    assert topic_for("market_data", "AAPL") == "market_data:AAPL"
    assert topic_for("alerts", "*") == "alerts:*"
    for kind in SUBSCRIPTION_TYPES:
        assert split_topic(topic_for(kind, "BRK.B")) == (kind, "BRK.B")
    assert split_topic("nocolon") == ("nocolon", "")
    assert set(STREAMED_TYPE) == set(SUBSCRIPTION_TYPES)
    assert set(STREAMED_TYPE.values()) <= set(SERVER_MESSAGE_TYPES)


def test_client_adapter_discriminates_on_message_type() -> None:
    ping = client_message_adapter.validate_python({"message_type": "ping"})
    assert isinstance(ping, Ping)
    unsub = client_message_adapter.validate_python(
        {"message_type": "unsubscribe", "subscription_type": "analytics", "symbol": "goog"}
    )
    assert isinstance(unsub, Unsubscribe)
    assert unsub.symbol == "GOOG"
