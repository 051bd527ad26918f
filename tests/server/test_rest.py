"""REST endpoints against a real in-process jupyter server."""

from __future__ import annotations

import json
import math
from typing import Any

import jsonschema
import pytest
from tornado.httpclient import HTTPClientError

from jupyter_rtstream.core.messages import CLIENT_MESSAGE_TYPES, SERVER_MESSAGE_TYPES
from jupyter_rtstream.schema import load as load_committed_schema


async def get_json(jp_fetch: Any, *parts: str, **kwargs: Any) -> Any:
    response = await jp_fetch("rtstream", "api", *parts, **kwargs)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def post_json(jp_fetch: Any, *parts: str, body: Any) -> tuple[int, Any]:
    try:
        response = await jp_fetch("rtstream", "api", *parts, method="POST", body=json.dumps(body))
    except HTTPClientError as exc:
        assert exc.response is not None
        return exc.code, json.loads(exc.response.body)
    return response.code, json.loads(response.body)


@pytest.mark.parametrize(
    "path",
    [
        ("status",),
        ("schema",),
        ("instruments",),
        ("instruments", "AAPL", "snapshot"),
        ("alerts",),
        ("alerts", "rules"),
    ],
)
async def test_every_endpoint_requires_auth(jp_fetch: Any, rtstream_app: Any, path: Any) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", *path, headers={"Authorization": ""})
    assert exc.value.code == 403


async def test_post_endpoints_require_auth(jp_fetch: Any, rtstream_app: Any) -> None:
    for path in (("ticks",), ("alerts", "rules")):
        with pytest.raises(HTTPClientError) as exc:
            await jp_fetch(
                "rtstream", "api", *path, method="POST", body="{}", headers={"Authorization": ""}
            )
        assert exc.value.code == 403


async def test_status(jp_fetch: Any, rtstream_app: Any) -> None:
    status = await get_json(jp_fetch, "status")
    assert status["version"] == rtstream_app.version
    assert status["protocol_versions"] == ["1.0"]
    assert status["feed"]["kind"] == "simulated" and status["feed"]["running"] is True
    assert status["feed"]["symbols"] == ["AAPL", "MSFT", "GOOG", "AMZN", "NVDA"]
    assert isinstance(status["clients"], list) and isinstance(status["topics"], list)
    assert {"published", "fanned_out", "conflated"} <= set(status["counters"])


async def test_schema_is_one_draft_2020_12_document(jp_fetch: Any, rtstream_app: Any) -> None:
    schema = await get_json(jp_fetch, "schema")
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    consts = {
        d["properties"]["message_type"]["const"]
        for d in schema["$defs"].values()
        if "message_type" in d.get("properties", {})
    }
    assert consts == set(SERVER_MESSAGE_TYPES) | set(CLIENT_MESSAGE_TYPES)
    assert "#/$defs/" in json.dumps(schema) and '"#/definitions' not in json.dumps(schema)
    assert schema == load_committed_schema(), "the served schema is the committed one"


async def test_instruments_and_snapshot(jp_fetch: Any, rtstream_app: Any) -> None:
    listing = await get_json(jp_fetch, "instruments")
    ids = {i["symbol"]: i["instrument_id"] for i in listing["instruments"]}
    assert ids == {"AAPL": 1, "MSFT": 2, "GOOG": 3, "AMZN": 4, "NVDA": 5}
    assert all(i["price"] > 0 for i in listing["instruments"]), "instruments start warm"
    snap = await get_json(jp_fetch, "instruments", "msft", "snapshot")
    assert snap["symbol"] == "MSFT" and snap["instrument_id"] == 2
    assert snap["timestamp"].endswith("Z")
    # Warm start: every indicator is already computed (history_ticks=50 >= MACD's 34).
    assert snap["indicators"] and all(
        v is not None and math.isfinite(v) for v in snap["indicators"].values()
    )
    assert snap["analysis"]["trend"] in {"bullish", "bearish", "neutral"}
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", "instruments", "NOPE", "snapshot")
    assert exc.value.code == 404
    assert json.loads(exc.value.response.body)["error_code"] == "UNKNOWN_INSTRUMENT"


async def test_post_ticks_registers_new_symbols(jp_fetch: Any, rtstream_app: Any) -> None:
    code, body = await post_json(
        jp_fetch,
        "ticks",
        body={
            "ticks": [
                {
                    "symbol": "xyz",
                    "price": 101.5,
                    "volume": 300,
                    "timestamp": "2026-01-05T14:30:00Z",
                },
                {"symbol": "XYZ", "price": 102.0, "volume": 100},
            ]
        },
    )
    assert (code, body) == (200, {"accepted": 2})
    snap = await get_json(jp_fetch, "instruments", "XYZ", "snapshot")
    assert snap["price"] == 102.0 and snap["instrument_id"] == 6
    assert snap["indicators"]["vwap"] == pytest.approx((101.5 * 300 + 102.0 * 100) / 400)


@pytest.mark.parametrize(
    ("ticks", "code"),
    [
        ([{"symbol": "OK1", "price": 1.0}, {"symbol": "BAD", "price": -1.0}], "INVALID_MESSAGE"),
        ([{"symbol": "OK1", "price": 1.0}, {"symbol": "BAD", "price": "12"}], "INVALID_MESSAGE"),
        (
            [{"symbol": "OK1", "price": 1.0}, {"symbol": "BAD", "price": 1, "x": 1}],
            "INVALID_MESSAGE",
        ),
        (
            [{"symbol": "OK1", "price": 1.0}, {"symbol": "no spaces!", "price": 1}],
            "INVALID_MESSAGE",
        ),
        ([], "INVALID_MESSAGE"),
    ],
)
async def test_invalid_tick_batches_are_refused_whole(
    jp_fetch: Any, rtstream_app: Any, ticks: Any, code: str
) -> None:
    status, body = await post_json(jp_fetch, "ticks", body={"ticks": ticks})
    assert status == 400 and body["error_code"] == code and body["error_message"]
    assert "OK1" not in rtstream_app.instruments, "nothing of a refused batch is applied"


async def test_non_finite_and_non_json_ticks(jp_fetch: Any, rtstream_app: Any) -> None:
    for raw in ('{"ticks": [{"symbol": "NAN", "price": NaN}]}', "{nope"):
        with pytest.raises(HTTPClientError) as exc:
            await jp_fetch("rtstream", "api", "ticks", method="POST", body=raw)
        assert exc.value.code == 400
        body = json.loads(exc.value.response.body)
        assert body["error_code"] in {"INVALID_JSON", "INVALID_MESSAGE"}
    assert "NAN" not in rtstream_app.instruments


@pytest.mark.parametrize("rtstream_config", [{"max_tick_batch": 3}])
async def test_too_large_a_batch(jp_fetch: Any, rtstream_app: Any, rtstream_config: Any) -> None:
    status, body = await post_json(
        jp_fetch, "ticks", body={"ticks": [{"symbol": "BIG", "price": 1.0}] * 4}
    )
    assert status == 400 and body["error_code"] == "MESSAGE_TOO_LARGE"
    assert "BIG" not in rtstream_app.instruments


async def test_extreme_prices_are_refused_before_anything_is_applied(
    jp_fetch: Any, rtstream_app: Any
) -> None:
    # 1e-300 then 1e300 would overflow the log return half-way through the indicators.
    ticks = [{"symbol": "ZZ", "price": 1e-300}, {"symbol": "ZZ", "price": 1e300}]
    status, body = await post_json(jp_fetch, "ticks", body={"ticks": ticks})
    assert status == 400 and body["error_code"] == "INVALID_MESSAGE"
    assert "ZZ" not in rtstream_app.instruments


async def test_out_of_range_ids_are_answered_not_crashed(jp_fetch: Any, rtstream_app: Any) -> None:
    for since in (str(2**64), str(-(2**70)), "-1"):
        with pytest.raises(HTTPClientError) as exc:
            await jp_fetch("rtstream", "api", "alerts", params={"since": since})
        assert exc.value.code == 400, since
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", "alerts", "rules", str(2**64), method="DELETE")
    assert exc.value.code == 404
