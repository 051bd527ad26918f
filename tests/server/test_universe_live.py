"""A universe of 3,000 simulated symbols against a real in-process server (issue 19): it
serves before the seeded history is applied, snapshots say ``warming`` until it is, a
subscriber never gets an indicator before, unwatched topics build nothing, and alert rules
still see every tick."""

from __future__ import annotations

from typing import Any

import pytest

from .._wait import wait_until
from .conftest import of_type, recv_until, send
from .test_alerts import RULE
from .test_rest import get_json, post_json

UNIVERSE = [f"U{i}" for i in range(3000)]


@pytest.fixture
def rtstream_config() -> dict[str, Any]:
    return {
        "symbols": UNIVERSE,
        "max_symbols": 5000,
        "tick_rate": 1.0,
        "history_ticks": 300,
        "startup_warmup_ticks": 600,  # two symbols before serving, the rest in the background
    }


async def test_serves_at_once_and_warms_in_the_background(
    jp_fetch: Any, rtstream_app: Any, ws_connect: Any
) -> None:
    warmup = rtstream_app.warmup
    assert warmup is not None and warmup.pending > 2000, "most of the history is still to come"
    late = rtstream_app.snapshot("U2999")
    assert late["warming"] is True and late["indicators"] == {} and late["price"] is None
    status = await get_json(jp_fetch, "status")
    assert status["feed"]["warming"] > 0

    async def warm(symbol: str) -> dict[str, Any]:
        body: dict[str, Any] = await get_json(jp_fetch, "instruments", symbol, "snapshot")
        return body

    # The snapshot moved U2999 to the front of the warm-up: warm shortly, all indicators.
    await wait_until(lambda: not rtstream_app.pipeline.warming("U2999"), timeout=60.0)
    body = await warm("U2999")
    assert body["warming"] is False and body["price"] > 0
    assert body["indicators"] and all(v is not None for v in body["indicators"].values())

    # A subscriber to a symbol the warm-up has not reached: warmed at once, then its state.
    assert rtstream_app.pipeline.warming("U2500")
    ws = await ws_connect()
    await send(
        ws,
        message_type="subscribe",
        subscription_type="technical_indicators",
        symbol="U2500",
        request_id="ti",
    )
    ack = await recv_until(ws, of_type("ack"))
    assert ack["data"]["request_id"] == "ti"
    first = await recv_until(ws, of_type("technical_indicators"))
    assert first["data"]["symbol"] == "U2500"
    assert all(v is not None for v in first["data"]["indicators"].values())
    assert first["seq"] == 300, "the newest of its seeded history (seqs 1..300)"

    # Nothing is built for the 2,999 symbols nobody watches.
    status = await get_json(jp_fetch, "status")
    topics = {t["topic"] for t in status["topics"]}
    assert topics <= {"technical_indicators:U2500", "market_data:U2500"}, topics
    ws.close()


async def test_rules_see_every_tick_of_unwatched_symbols(jp_fetch: Any, rtstream_app: Any) -> None:
    status, rule = await post_json(
        jp_fetch, "alerts", "rules", body={**RULE, "symbol": "U1777", "rule_name": "U1777 up"}
    )
    assert status == 201
    status, _ = await post_json(
        jp_fetch,
        "ticks",
        body={"ticks": [{"symbol": "U1777", "price": p} for p in (50.0, 150.0)]},
    )
    assert status == 200

    # Published only once committed to the history (AlertCommitter).
    await wait_until(lambda: rtstream_app.pipeline.alerts >= 1, timeout=30.0)
    found = (await get_json(jp_fetch, "alerts", params={"symbol": "U1777"}))["alerts"]
    assert found[0]["rule_id"] == rule["rule_id"] and found[0]["current_value"] == 150.0
    assert "market_data:U1777" not in rtstream_app.hub.topics, "its market data: never built"
    assert not rtstream_app.pipeline.warming("U1777"), "a POSTed tick comes after its history"
