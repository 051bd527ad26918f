"""Alert rules over REST, alerts over the WebSocket, history in SQLite."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError

from .conftest import of_type, recv_until, send
from .test_rest import get_json, post_json

RULE = {
    "rule_name": "XYZ over 100",
    "symbol": "XYZ",
    "condition": "price_above",
    "target_value": 100.0,
    "severity": "high",
    "cooldown_seconds": 0.0,  # every crossing fires (the default cooldown is 60 s)
}


async def push(jp_fetch: Any, *prices: float, symbol: str = "XYZ") -> None:
    status, _ = await post_json(
        jp_fetch, "ticks", body={"ticks": [{"symbol": symbol, "price": p} for p in prices]}
    )
    assert status == 200


async def test_rule_lifecycle(jp_fetch: Any, rtstream_app: Any) -> None:
    status, body = await post_json(jp_fetch, "alerts", "rules", body=RULE)
    assert status == 400 and body["error_code"] == "UNKNOWN_INSTRUMENT"
    await push(jp_fetch, 99.0)
    status, rule = await post_json(jp_fetch, "alerts", "rules", body=RULE)
    assert status == 201
    assert rule["rule_id"] >= 1 and rule["symbol"] == "XYZ" and rule["severity"] == "high"
    listed = await get_json(jp_fetch, "alerts", "rules")
    assert [r["rule_id"] for r in listed["rules"]] == [rule["rule_id"]]
    response = await jp_fetch(
        "rtstream", "api", "alerts", "rules", str(rule["rule_id"]), method="DELETE"
    )
    assert response.code == 204
    assert (await get_json(jp_fetch, "alerts", "rules"))["rules"] == []
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", "alerts", "rules", str(rule["rule_id"]), method="DELETE")
    assert exc.value.code == 404


@pytest.mark.parametrize(
    "change",
    [
        {"condition": "sideways"},
        {"severity": "apocalyptic"},
        {"target_value": "100"},
        {"condition": "indicator_above", "indicator": "nonsense"},
        {"condition": "indicator_above"},
        {"rule_name": ""},
        {"unexpected": 1},
        {"cooldown_seconds": -1},
    ],
)
async def test_bad_rules_are_refused_and_not_stored(
    jp_fetch: Any, rtstream_app: Any, change: Any
) -> None:
    await push(jp_fetch, 99.0)
    status, body = await post_json(jp_fetch, "alerts", "rules", body={**RULE, **change})
    assert status == 400 and body["error_code"] == "INVALID_MESSAGE", body
    assert (await get_json(jp_fetch, "alerts", "rules"))["rules"] == []


async def test_nan_threshold_is_refused(jp_fetch: Any, rtstream_app: Any) -> None:
    await push(jp_fetch, 99.0)
    raw = json.dumps(RULE).replace("100.0", "NaN")
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", "alerts", "rules", method="POST", body=raw)
    assert exc.value.code == 400
    assert (await get_json(jp_fetch, "alerts", "rules"))["rules"] == []


async def test_alert_fires_once_per_crossing_is_stored_then_streamed(
    jp_fetch: Any, ws_connect: Any, rtstream_app: Any
) -> None:
    await push(jp_fetch, 99.0)
    _, rule = await post_json(jp_fetch, "alerts", "rules", body=RULE)
    ws = await ws_connect()
    for symbol in ("XYZ", "*"):
        await send(ws, message_type="subscribe", subscription_type="alerts", symbol=symbol)
        ack = await recv_until(ws, of_type("ack"))
        assert ack["data"]["topic"] == f"alerts:{symbol}"
    await push(jp_fetch, 99.5, 100.5, 101.0, 102.0)  # one crossing: one alert
    await push(jp_fetch, 99.0, 100.2)  # down and up again: a second alert
    received = [await recv_until(ws, of_type("alert")) for _ in range(4)]
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for msg in received:
        by_topic.setdefault(msg["topic"], []).append(msg)
    assert set(by_topic) == {"alerts:XYZ", "alerts:*"}
    for msgs in by_topic.values():
        assert [m["data"]["current_value"] for m in msgs] == [100.5, 100.2]
        assert [m["seq"] for m in msgs] == [msgs[0]["seq"], msgs[0]["seq"] + 1]
    alert = by_topic["alerts:XYZ"][0]["data"]
    assert alert["rule_id"] == rule["rule_id"] and alert["severity"] == "high"
    assert alert["rule_name"] == "XYZ over 100" and alert["condition"] == "price_above"
    assert alert["target_value"] == 100.0 and "XYZ" in alert["message"]
    history = (await get_json(jp_fetch, "alerts", params={"since": 0}))["alerts"]
    assert [a["alert_id"] for a in history] == [
        m["data"]["alert_id"] for m in by_topic["alerts:XYZ"]
    ], "every streamed alert is in the history, oldest first"
    assert history[0]["timestamp"] == alert["timestamp"]
    since_first = await get_json(jp_fetch, "alerts", params={"since": history[0]["alert_id"]})
    assert [a["current_value"] for a in since_first["alerts"]] == [100.2]
    # The SQLite file itself holds them (WAL mode).
    db = sqlite3.connect(rtstream_app.store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0] == 2


async def test_indicator_and_analytics_streams(ws_connect: Any) -> None:
    ws = await ws_connect()
    await send(
        ws, message_type="subscribe", subscription_type="technical_indicators", symbol="AAPL"
    )
    await recv_until(ws, of_type("ack"))
    first = await recv_until(ws, of_type("technical_indicators"))
    assert first["topic"] == "technical_indicators:AAPL"
    keys = {
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
    }
    assert set(first["data"]["indicators"]) == keys
    assert all(v is not None for v in first["data"]["indicators"].values()), "starts warm"
    bb = first["data"]["indicators"]
    assert bb["bb_lower"] <= bb["bb_middle"] <= bb["bb_upper"]
    await send(ws, message_type="subscribe", subscription_type="analytics", symbol="AAPL")
    await recv_until(ws, of_type("ack"))
    update = await recv_until(ws, of_type("analytics_update"), timeout=5)
    assert update["topic"] == "analytics:AAPL"
    assert update["data"]["results"]["trend"] in {"bullish", "bearish", "neutral"}
    assert update["data"]["next_update"] > update["data"]["calculation_time"]
