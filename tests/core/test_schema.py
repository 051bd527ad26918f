"""The committed JSON Schema: draft 2020-12, complete, self-contained, in sync with the models."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from jupyter_rtstream.core.codec import encode
from jupyter_rtstream.core.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES, json_schema
from jupyter_rtstream.schema import SCHEMA_PATH, load, render

from ._samples import client_samples, server_samples

#: message_type → name of its definition in $defs
MESSAGE_DEFS = {
    "market_data": "MarketData",
    "technical_indicators": "TechnicalIndicators",
    "analytics_update": "AnalyticsUpdate",
    "alert": "Alert",
    "connection_status": "ConnectionStatus",
    "ack": "Ack",
    "error": "Error",
    "subscribe": "Subscribe",
    "unsubscribe": "Unsubscribe",
    "ping": "Ping",
}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json_schema()


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> Draft202012Validator:
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schema_matches_the_models() -> None:
    committed = SCHEMA_PATH.read_text(encoding="utf-8")
    assert committed == render(), "run `python -m jupyter_rtstream.schema` and commit the result"
    assert load() == json.loads(render())


def test_render_is_deterministic_sorted_and_newline_terminated() -> None:
    text = render()
    assert text == render()
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_schema_is_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-protocol-version"] == "1.0"
    assert schema["x-server-message-types"] == list(SERVER_MESSAGE_TYPES)
    assert schema["x-client-message-types"] == list(CLIENT_MESSAGE_TYPES)
    Draft202012Validator.check_schema(schema)


def test_every_message_type_is_defined_with_a_const_discriminator(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    assert set(MESSAGE_DEFS) == set(SERVER_MESSAGE_TYPES) | set(CLIENT_MESSAGE_TYPES)
    for message_type, name in MESSAGE_DEFS.items():
        assert name in defs, name
        prop = defs[name]["properties"]["message_type"]
        assert prop["const"] == message_type
    top = {ref for option in schema["oneOf"] for ref in _refs(option)}
    assert top == {f"#/$defs/{name}" for name in MESSAGE_DEFS.values()}
    assert schema["discriminator"]["propertyName"] == "message_type"
    assert schema["discriminator"]["mapping"] == {
        message_type: f"#/$defs/{name}" for message_type, name in MESSAGE_DEFS.items()
    }


def test_every_ref_is_local_and_resolves(schema: dict[str, Any]) -> None:
    refs = set(_refs(schema))
    assert refs
    for ref in refs:
        assert ref.startswith("#/$defs/"), ref
        assert ref.removeprefix("#/$defs/") in schema["$defs"], ref


def test_error_codes_are_enumerated(schema: dict[str, Any]) -> None:
    assert set(schema["$defs"]["ErrorCode"]["enum"]) == {
        "INVALID_JSON",
        "INVALID_MESSAGE",
        "UNKNOWN_MESSAGE_TYPE",
        "UNSUPPORTED_VERSION",
        "UNKNOWN_INSTRUMENT",
        "SUBSCRIPTION_LIMIT",
        "RATE_LIMITED",
        "MESSAGE_TOO_LARGE",
        "INTERNAL_ERROR",
        "SYMBOL_LIMIT",
        "RULE_LIMIT",
        "INVALID_TICK",
        "READ_ONLY_SYMBOL",
    }


@pytest.mark.parametrize(
    "message", [*server_samples(), *client_samples()], ids=lambda m: m.message_type
)
def test_encoded_messages_validate_against_the_schema(
    message: Any, validator: Draft202012Validator
) -> None:
    doc = json.loads(encode(message))
    errors = list(validator.iter_errors(doc))
    assert not errors, [e.message for e in errors]
    # ...and against exactly their own definition
    own = Draft202012Validator(
        {
            "$ref": f"#/$defs/{MESSAGE_DEFS[message.message_type]}",
            "$defs": validator.schema["$defs"],
        }
    )
    own.validate(doc)


@pytest.mark.parametrize(
    "doc",
    [
        {"message_type": "market_data", "topic": "market_data:AAPL"},  # no data
        {"message_type": "subscribe", "symbol": "AAPL"},  # no subscription_type
        {"message_type": "ack", "data": {"action": "teleport"}},
        {"message_type": "error", "data": {"error_code": "OOPS", "error_message": "x"}},
        {"message_type": "market_data", "topic": 1, "data": {}},
    ],
)
def test_invalid_documents_fail_the_schema(doc: Any, validator: Draft202012Validator) -> None:
    assert not validator.is_valid(doc)


def test_regression_schema_requires_message_type(schema: dict[str, Any]) -> None:
    """Regression test.

    Fixed (core/messages.py `json_schema()`): ``message_type`` is not listed in ``required``
    of any of the 10 message definitions (it has a default in the models and the schema is
    generated in serialization mode without ``json_schema_serialization_defaults_required``).
    So ``{}`` validates against the schema (it matches only ``Ping``), while the server
    answers it with INVALID_MESSAGE "missing 'message_type'", and types generated from the
    schema (labextension, other-language clients) get an optional discriminator.
    Expected: ``message_type`` required in every message definition and ``{}`` invalid."""
    missing = [
        name
        for name in MESSAGE_DEFS.values()
        if "message_type" not in schema["$defs"][name].get("required", [])
    ]
    assert not missing, f"message_type not required in {missing}"
    assert not Draft202012Validator(schema).is_valid({})
