"""Issue 11 bounds against a real server: each a typed refusal, nothing half-applied, and
the server still serving everyone else afterwards."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .._wait import wait_until
from .conftest import of_type, recv, recv_until, send
from .test_alerts import RULE, push
from .test_rest import get_json, post_json


async def assert_still_streaming(ws_connect: Any) -> None:
    """A fresh client subscribes and receives live market data."""
    ws = await ws_connect()
    await send(ws, message_type="subscribe", subscription_type="market_data", symbol="AAPL")
    await recv_until(ws, of_type("ack"))
    await recv_until(ws, lambda m: m["message_type"] == "market_data" and "seq" in m)
    ws.close()


async def test_ten_thousand_made_up_symbols_are_refused_whole(
    jp_fetch: Any, ws_connect: Any, rtstream_app: Any
) -> None:
    known = len(rtstream_app.instruments)
    topics = len(rtstream_app.hub.topics)
    body = {"ticks": [{"symbol": f"Z{i}", "price": 10.0} for i in range(10_000)]}
    status, answer = await post_json(jp_fetch, "ticks", body=body)
    assert status == 400 and answer["error_code"] == "SYMBOL_LIMIT", answer
    assert len(rtstream_app.instruments) == known, "no symbol registered"
    assert len(rtstream_app.hub.topics) == topics, "no topic created"
    assert "Z0" not in rtstream_app.instruments and "Z9999" not in rtstream_app.instruments
    # A batch that fits is accepted, and the others still get their data.
    await push(jp_fetch, 10.0, symbol="FITS")
    assert "FITS" in rtstream_app.instruments
    await assert_still_streaming(ws_connect)


@pytest.mark.parametrize("rtstream_config", [{"max_symbols": 7}])
async def test_symbol_limit_counts_known_symbols(
    jp_fetch: Any, rtstream_app: Any, rtstream_config: Any
) -> None:
    await push(jp_fetch, 1.0, symbol="A1")  # 5 simulated + 1
    status, answer = await post_json(
        jp_fetch, "ticks", body={"ticks": [{"symbol": s, "price": 1.0} for s in ("A1", "B", "C")]}
    )
    assert status == 400 and answer["error_code"] == "SYMBOL_LIMIT"
    assert "B" not in rtstream_app.instruments and rtstream_app.instruments.get("A1").ticks == 1
    await push(jp_fetch, 2.0, 3.0, symbol="A1")  # known symbols still tick
    await push(jp_fetch, 1.0, symbol="B")  # exactly max_symbols


@pytest.mark.parametrize("rtstream_config", [{"max_rules": 3}])
async def test_rule_limit(jp_fetch: Any, rtstream_app: Any, rtstream_config: Any) -> None:
    await push(jp_fetch, 50.0)
    ids = []
    for _ in range(3):
        status, rule = await post_json(jp_fetch, "alerts", "rules", body=RULE)
        assert status == 201
        ids.append(rule["rule_id"])
    status, answer = await post_json(jp_fetch, "alerts", "rules", body=RULE)
    assert status == 400 and answer["error_code"] == "RULE_LIMIT"
    listed = (await get_json(jp_fetch, "alerts", "rules"))["rules"]
    assert [r["rule_id"] for r in listed] == ids, "the refused rule was not stored"
    assert rtstream_app.pipeline.engine.rule_count() == 3
    await jp_fetch("rtstream", "api", "alerts", "rules", str(ids[0]), method="DELETE")
    assert (await post_json(jp_fetch, "alerts", "rules", body=RULE))[0] == 201


async def test_rule_window_and_cooldown_bounds(jp_fetch: Any, rtstream_app: Any) -> None:
    await push(jp_fetch, 50.0)
    percent = {**RULE, "condition": "percent_change_above", "target_value": 1.0}
    status, answer = await post_json(
        jp_fetch, "alerts", "rules", body={**percent, "window_seconds": 86_401.0}
    )
    assert status == 400 and answer["error_code"] == "INVALID_MESSAGE"
    assert (await get_json(jp_fetch, "alerts", "rules"))["rules"] == []
    status, rule = await post_json(
        jp_fetch, "alerts", "rules", body={**percent, "window_seconds": 86_400.0}
    )
    assert status == 201 and rule["window_seconds"] == 86_400.0
    no_cooldown = {k: v for k, v in RULE.items() if k != "cooldown_seconds"}
    status, rule = await post_json(jp_fetch, "alerts", "rules", body=no_cooldown)
    assert status == 201 and rule["cooldown_seconds"] == 60.0, "documented default"


async def test_future_tick_is_refused_and_changes_nothing(
    jp_fetch: Any, ws_connect: Any, rtstream_app: Any
) -> None:
    await push(jp_fetch, 50.0)
    status, _ = await post_json(jp_fetch, "alerts", "rules", body=RULE)
    assert status == 201
    ws = await ws_connect()
    await send(ws, message_type="subscribe", subscription_type="alerts", symbol="XYZ")
    await recv_until(ws, of_type("ack"))
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    status, answer = await post_json(
        jp_fetch,
        "ticks",
        body={
            "ticks": [
                {"symbol": "XYZ", "price": 1.0},
                {"symbol": "XYZ", "price": 200.0, "timestamp": future},
            ]
        },
    )
    assert status == 400 and answer["error_code"] == "INVALID_TICK", answer
    assert rtstream_app.instruments.get("XYZ").price == 50.0, "the batch was refused whole"
    # Event time did not jump: the rule (created at 50, so armed) fires on the next crossing.
    await push(jp_fetch, 101.0)
    alert = await recv_until(ws, of_type("alert"))
    assert alert["data"]["current_value"] == 101.0


async def test_rule_starts_from_current_state_and_ack_carries_last_alert_id(
    jp_fetch: Any, ws_connect: Any, rtstream_app: Any
) -> None:
    ws = await ws_connect()
    await push(jp_fetch, 50.0)
    await send(ws, message_type="subscribe", subscription_type="alerts", symbol="*")
    ack = await recv_until(ws, of_type("ack"))
    assert ack["data"]["last_alert_id"] == 0
    # The store's identity comes with its ids (fixed when the SQLite file was created).
    store_id = rtstream_app.store_worker.store.store_id
    assert ack["data"]["store_id"] == store_id and len(store_id) == 32
    await post_json(jp_fetch, "alerts", "rules", body=RULE)  # created while the price is 50
    await push(jp_fetch, 101.0)  # the first crossing fires
    alert = await recv_until(ws, of_type("alert"))
    assert alert["data"]["current_value"] == 101.0
    other = await ws_connect()
    await send(other, message_type="subscribe", subscription_type="alerts", symbol="XYZ")
    ack = await recv_until(other, of_type("ack"))
    assert ack["data"]["last_alert_id"] == alert["data"]["alert_id"]
    await send(other, message_type="subscribe", subscription_type="market_data", symbol="XYZ")
    ack = await recv_until(other, of_type("ack"))
    assert ack["data"]["last_alert_id"] is None, "only alert topics carry it"
    assert ack["data"]["store_id"] is None


@pytest.mark.parametrize(
    "params",
    [
        {"since": "-1"},
        {"since": str(-(2**80))},
        {"since": str(2**63)},
        {"since": "1e3"},
        {"since": "9" * 100},
        {"limit": "0"},
        {"limit": "10001"},
        {"limit": "-5"},
        {"symbol": "X" * 40},
    ],
)
async def test_query_parameters_are_range_checked(
    jp_fetch: Any, rtstream_app: Any, params: dict[str, str]
) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", "alerts", params=params)
    assert exc.value.code == 400
    assert json.loads(exc.value.response.body)["error_code"] == "INVALID_MESSAGE"
    ok = await get_json(jp_fetch, "alerts", params={"since": "0", "limit": "10000"})
    assert ok == {"alerts": []}


@pytest.mark.parametrize("rtstream_config", [{"max_connections_per_user": 3}])
async def test_connections_per_user(
    jp_fetch: Any, ws_connect: Any, jp_ws_fetch: Any, rtstream_app: Any, rtstream_config: Any
) -> None:
    open_ = [await ws_connect() for _ in range(3)]
    extra = await jp_ws_fetch("rtstream", "ws")
    assert await recv(extra) is None, "closed without a greeting"
    assert extra.close_code == 1008
    reason = json.loads(extra.close_reason)
    assert reason["reason"] == "CONNECTION_LIMIT" and reason["retry_after"] > 0
    assert len(rtstream_app.connections) == 3
    for ws in open_:  # the others are untouched
        await send(ws, message_type="ping", request_id="p")
        await recv_until(ws, of_type("ack"))
    status = await get_json(jp_fetch, "status")
    assert len(status["clients"]) == 3 and status["other_clients"] == 0
    open_[0].close()
    await wait_until(lambda: len(rtstream_app.connections) == 2, what="the close")
    await assert_still_streaming(ws_connect)
