"""decode_client / decode_server classification: every error code, request_id echo, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jupyter_rtstream.core.codec import decode_client, decode_server, encode, request_id_of
from jupyter_rtstream.core.errors import (
    CloseCode,
    CloseConnection,
    ErrorCode,
    ProtocolError,
    close_reason,
)
from jupyter_rtstream.core.messages import Ack, AckPayload, Ping, Subscribe, Unsubscribe

from ._samples import client_samples, server_samples

DECODE_CODES = {
    ErrorCode.INVALID_JSON,
    ErrorCode.INVALID_MESSAGE,
    ErrorCode.UNKNOWN_MESSAGE_TYPE,
    ErrorCode.UNSUPPORTED_VERSION,
}


def _error(frame: str | bytes) -> ProtocolError:
    result = decode_client(frame)
    assert isinstance(result, ProtocolError), result
    return result


# --------------------------------------------------------------------------- INVALID_JSON


@pytest.mark.parametrize(
    "frame",
    [
        "",
        " ",
        "{",
        "{'message_type': 'ping'}",
        '{"message_type":"ping",}',
        "ping",
        "NaN garbage",
        '{"message_type":"ping"} trailing',
        "\ufeff" + '{"message_type":"ping"}',  # a BOM is not JSON text
        "[" * 100_000,  # deeply nested, unclosed: must not blow the stack
        "[" * 5_000 + "]" * 5_000,  # deeper than the stdlib parser's recursion limit
        "{" + '"a":{' * 50_000,
        "1" * 5_000,  # integer too long for int()
    ],
    ids=lambda f: repr(f[:24]) + f"..len{len(f)}",
)
def test_invalid_json(frame: str) -> None:
    err = _error(frame)
    assert err.code is ErrorCode.INVALID_JSON
    assert err.request_id is None


@pytest.mark.parametrize(
    "frame",
    [
        b"\xff\xfe\xfd",
        b'{"message_type":"ping","request_id":"\xc3\x28"}',
        b"\x80",
        b"{\xed\xa0\x80}",
    ],
)
def test_invalid_utf8_bytes_are_invalid_json(frame: bytes) -> None:
    assert _error(frame).code is ErrorCode.INVALID_JSON


def test_valid_bytes_frames_decode() -> None:
    decoded = decode_client(b'{"message_type":"ping","request_id":"b"}')
    assert isinstance(decoded, Ping)
    assert decoded.request_id == "b"


# --------------------------------------------------------------------------- INVALID_MESSAGE


@pytest.mark.parametrize(
    "frame",
    ["[]", "[1,2]", '"ping"', "42", "null", "true", "[" * 300 + "]" * 300],
)
def test_non_object_is_invalid_message(frame: str) -> None:
    err = _error(frame)
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert "object" in err.message


@pytest.mark.parametrize("frame", ["{}", '{"request_id":"r9"}', '{"message_type":null}'])
def test_missing_message_type_is_invalid_message(frame: str) -> None:
    err = _error(frame)
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert "message_type" in err.message


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        ('{"message_type":"subscribe","symbol":"AAPL"}', "subscription_type"),
        (
            '{"message_type":"subscribe","subscription_type":"quotes","symbol":"AAPL"}',
            "subscription_type",
        ),
        ('{"message_type":"subscribe","subscription_type":"market_data"}', "symbol"),
        ('{"message_type":"subscribe","subscription_type":"market_data","symbol":"$$"}', "symbol"),
        ('{"message_type":"subscribe","subscription_type":"market_data","symbol":"*"}', "*"),
        (
            '{"message_type":"subscribe","subscription_type":"market_data","symbol":"AAPL",'
            '"resume_from":-1}',
            "resume_from",
        ),
        (
            '{"message_type":"unsubscribe","subscription_type":"alerts","instrument_id":"x"}',
            "instrument_id",
        ),
        ('{"message_type":"ping","request_id":true}', "request_id"),
        ('{"message_type":"ping","timestamp":"yesterday"}', "timestamp"),
        ('{"message_type":"ping","version":1}', "version"),
        ('{"message_type":"ping","version":null}', ""),
    ],
)
def test_bad_fields_are_invalid_message(frame: str, field: str) -> None:
    err = _error(frame)
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert field in err.message
    assert len(err.message) < 1000


def test_invalid_message_summary_is_short() -> None:
    frame = json.dumps(
        {
            "message_type": "subscribe",
            "subscription_type": "nope",
            "symbol": "!!",
            "instrument_id": -5,
            "resume_from": -1,
            "epoch": ["x"],
            "request_id": False,
        }
    )
    err = _error(frame)
    assert err.code is ErrorCode.INVALID_MESSAGE
    assert "more" in err.message  # capped at 3 field errors


# --------------------------------------------------------------------------- UNKNOWN_MESSAGE_TYPE


@pytest.mark.parametrize(
    "message_type",
    ["quote", "SUBSCRIBE", "", 5, ["ping"], "ack", "market_data", "connection_status", "x" * 500],
)
def test_unknown_message_type(message_type: Any) -> None:
    err = _error(json.dumps({"message_type": message_type, "request_id": "r"}))
    assert err.code is ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert err.request_id == "r"
    assert len(err.message) < 200  # the echoed type is truncated


def test_client_type_is_unknown_to_decode_server() -> None:
    result = decode_server('{"message_type":"ping"}')
    assert isinstance(result, ProtocolError)
    assert result.code is ErrorCode.UNKNOWN_MESSAGE_TYPE
    assert "market_data" in result.message


# --------------------------------------------------------------------------- versions


@pytest.mark.parametrize("version", ["2.0", "0.9", "abc", "2", "1.", "1.0.0", "10", "v1", " 1.0"])
def test_unsupported_version(version: str) -> None:
    err = _error(json.dumps({"message_type": "ping", "version": version, "request_id": 3}))
    assert err.code is ErrorCode.UNSUPPORTED_VERSION
    assert err.request_id == "3"
    assert "1.x" in err.message


def test_version_is_checked_before_message_type() -> None:
    err = _error('{"message_type":"teleport","version":"2.0"}')
    assert err.code is ErrorCode.UNSUPPORTED_VERSION


@pytest.mark.parametrize("version", ["1", "1.0", "1.42", "1.999999"])
def test_any_1x_version_is_accepted(version: str) -> None:
    ping = decode_client(json.dumps({"message_type": "ping", "version": version}))
    assert isinstance(ping, Ping)
    assert ping.version == version
    sub = decode_client(
        json.dumps(
            {
                "message_type": "subscribe",
                "version": version,
                "subscription_type": "market_data",
                "symbol": "AAPL",
            }
        )
    )
    assert isinstance(sub, Subscribe)


def test_regression_version_with_trailing_newline_is_refused() -> None:
    """Regression test.

    Fixed (core/messages.py `_VERSION_RE`, used by `_check_version` and codec `_classify`):
    the pattern ``^1(\\.\\d{1,6})?$`` uses ``$``, which also matches before a trailing
    newline, so ``"1.0\\n"`` is accepted as a 1.x version (and echoed back verbatim in
    ``Ping.version``). Expected UNSUPPORTED_VERSION (use ``\\Z`` or ``fullmatch``)."""
    result = decode_client(json.dumps({"message_type": "ping", "version": "1.0\n"}))
    assert isinstance(result, ProtocolError)
    assert result.code is ErrorCode.UNSUPPORTED_VERSION


# --------------------------------------------------------------------------- request_id echo


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"message_type":"subscribe","request_id":"abc"}', ErrorCode.INVALID_MESSAGE),
        ('{"message_type":"what","request_id":"abc"}', ErrorCode.UNKNOWN_MESSAGE_TYPE),
        ('{"message_type":"ping","version":"9","request_id":"abc"}', ErrorCode.UNSUPPORTED_VERSION),
        ('{"request_id":"abc"}', ErrorCode.INVALID_MESSAGE),
    ],
)
def test_request_id_is_echoed_when_present(frame: str, code: ErrorCode) -> None:
    err = _error(frame)
    assert err.code is code
    assert err.request_id == "abc"


def test_request_id_echo_rules() -> None:
    assert _error('{"message_type":"x","request_id":12}').request_id == "12"
    assert _error('{"message_type":"x","request_id":true}').request_id is None
    assert _error('{"message_type":"x","request_id":null}').request_id is None
    assert _error('{"message_type":"x","request_id":[1]}').request_id is None
    long = _error(json.dumps({"message_type": "x", "request_id": "y" * 500}))
    assert long.request_id == "y" * 128
    assert _error('[{"request_id":"inner"}]').request_id is None
    assert _error("{").request_id is None


def test_request_id_of() -> None:
    assert request_id_of('{"request_id":"a"}') == "a"
    assert request_id_of('{"request_id":5}') == "5"
    assert request_id_of(b'{"request_id":"b"}') == "b"
    assert request_id_of("not json") is None
    assert request_id_of("[" * 100_000) is None
    assert request_id_of(b"\xff") is None
    assert request_id_of("[]") is None


# --------------------------------------------------------------------------- encode / server side


def test_encode_is_compact_json_of_the_model() -> None:
    for message in [*server_samples(), *client_samples()]:
        text = encode(message)
        assert isinstance(text, str)
        assert json.loads(text)["message_type"] == message.message_type
        assert "\n" not in text


def test_decode_server_classifies_like_decode_client() -> None:
    bad_json = decode_server("{")
    assert isinstance(bad_json, ProtocolError)
    assert bad_json.code is ErrorCode.INVALID_JSON
    missing = decode_server('{"message_type":"ack","request_id":"q"}')
    assert isinstance(missing, ProtocolError)
    assert missing.code is ErrorCode.INVALID_MESSAGE
    assert missing.request_id == "q"
    ok = decode_server(encode(Ack(data=AckPayload(action="ping"))))
    assert isinstance(ok, Ack)


# --------------------------------------------------------------------------- errors module


def test_close_reason_is_short_json() -> None:
    assert json.loads(close_reason("SLOW_CONSUMER", 1.0)) == {
        "reason": "SLOW_CONSUMER",
        "retry_after": 1.0,
    }
    assert json.loads(close_reason("BINARY_FRAME")) == {"reason": "BINARY_FRAME"}
    assert json.loads(close_reason("X", 1.23456)) == {"reason": "X", "retry_after": 1.23}
    for code in ErrorCode:
        assert len(close_reason(code.value, 12345.678).encode()) <= 123


def test_error_classes() -> None:
    err = ProtocolError(ErrorCode.INVALID_JSON, "bad", "r1")
    assert str(err) == "INVALID_JSON: bad"
    assert (err.code, err.message, err.request_id) == (ErrorCode.INVALID_JSON, "bad", "r1")
    close = CloseConnection(
        ErrorCode.RATE_LIMITED, "flood", CloseCode.POLICY_VIOLATION, retry_after=2.0
    )
    assert isinstance(close, ProtocolError)
    assert json.loads(close.reason) == {"reason": "RATE_LIMITED", "retry_after": 2.0}
    assert str(ErrorCode.RATE_LIMITED) == "RATE_LIMITED"


# --------------------------------------------------------------------------- fuzzing

_KEYS = st.sampled_from(
    [
        "message_type",
        "version",
        "request_id",
        "subscription_type",
        "symbol",
        "instrument_id",
        "resume_from",
        "epoch",
        "timestamp",
        "x",
    ]
)
_VALUES = st.one_of(
    st.sampled_from(
        ["subscribe", "unsubscribe", "ping", "ack", "market_data", "alerts", "*", "1.0", "2.0"]
    ),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=20, alphabet=st.characters(codec=None)),
)
_JSONISH = st.recursive(
    _VALUES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_KEYS, children, max_size=6),
    max_leaves=20,
)


def _check(result: object) -> None:
    assert isinstance(result, (Subscribe, Unsubscribe, Ping, ProtocolError)), result
    if isinstance(result, ProtocolError):
        assert result.code in DECODE_CODES
        assert result.request_id is None or isinstance(result.request_id, str)


_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(st.text(alphabet=st.characters(codec=None)))
def test_decode_client_never_raises_on_text(frame: str) -> None:
    _check(decode_client(frame))


@_FUZZ
@given(st.binary())
def test_decode_client_never_raises_on_bytes(frame: bytes) -> None:
    _check(decode_client(frame))


@_FUZZ
@given(_JSONISH, st.booleans())
def test_decode_client_never_raises_on_json_shaped_frames(doc: Any, ascii_only: bool) -> None:
    frame = json.dumps(doc, ensure_ascii=ascii_only)
    _check(decode_client(frame))
    _check(decode_client(frame.encode("utf-8", "surrogatepass")))


@_FUZZ
@given(
    st.sampled_from(["subscribe", "unsubscribe"]),
    st.sampled_from(["market_data", "technical_indicators", "analytics", "alerts"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._\-^=]{0,15}", fullmatch=True),
    st.one_of(st.none(), st.text(max_size=128), st.integers(min_value=0, max_value=2**40)),
)
def test_valid_requests_always_decode(
    message_type: str, kind: str, symbol: str, request_id: Any
) -> None:
    frame = {
        "message_type": message_type,
        "subscription_type": kind,
        "symbol": symbol,
        "request_id": request_id,
    }
    decoded = decode_client(json.dumps(frame))
    assert isinstance(decoded, (Subscribe, Unsubscribe)), decoded
    assert decoded.symbol == symbol.upper()
    assert decoded.request_id == (None if request_id is None else str(request_id))
