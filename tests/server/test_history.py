"""``GET rtstream/api/instruments/{symbol}/history`` against a real in-process server."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import jsonschema
import pytest
from tornado.httpclient import HTTPClientError

from jupyter_rtstream.schema import load as load_committed_schema

from .conftest import recv_until, send

HISTORY_TICKS = 50  # tests/conftest.py RTSTREAM_TEST_CONFIG


@pytest.fixture
def rtstream_config() -> dict[str, Any]:
    # One round of seeded history per second: 50 s of it, clearly older than the live feed.
    return {"history_interval": 1.0}


async def history(jp_fetch: Any, symbol: str = "AAPL", **params: Any) -> dict[str, Any]:
    response = await jp_fetch(
        "rtstream", "api", "instruments", symbol, "history", params={**params}
    )
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = json.loads(response.body)
    return body


async def refused(jp_fetch: Any, symbol: str = "AAPL", **params: Any) -> tuple[int, Any]:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch("rtstream", "api", "instruments", symbol, "history", params=params)
    assert exc.value.response is not None
    return exc.value.code, json.loads(exc.value.response.body)


async def stopped(app: Any) -> Any:
    """The app with its feed stopped, so the history holds still while a test reads it."""
    await app.feed_runner.stop()
    return app


def when(message: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(message["timestamp"].replace("Z", "+00:00"))


async def watch(ws_connect: Any, *topics: tuple[str, str]) -> Any:
    """A client subscribed to ``topics`` (messages are built only for watched topics)."""
    ws = await ws_connect()
    for n, (kind, symbol) in enumerate(topics):
        await send(
            ws, message_type="subscribe", subscription_type=kind, symbol=symbol, request_id=f"w{n}"
        )
        await recv_until(
            ws, lambda m, n=n: m["message_type"] == "ack" and m["data"]["request_id"] == f"w{n}"
        )
    return ws


async def test_history_is_the_seeded_history_then_the_live_messages(
    jp_fetch: Any, rtstream_app: Any, ws_connect: Any
) -> None:
    from .._wait import wait_until

    ws = await watch(ws_connect, ("market_data", "AAPL"))
    await wait_until(lambda: rtstream_app.hub.last_seq("market_data:AAPL") > HISTORY_TICKS + 3)
    app = await stopped(rtstream_app)
    body = await history(jp_fetch, "aapl", limit=10_000)
    assert {k: body[k] for k in ("symbol", "kind", "topic", "epoch")} == {
        "symbol": "AAPL",
        "kind": "market_data",
        "topic": "market_data:AAPL",
        "epoch": app.hub.epoch,
    }
    messages = body["messages"]
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(1, body["seq"] + 1)), "oldest first, every seq still held"
    assert body["seq"] == app.hub.last_seq("market_data:AAPL")
    assert all(
        m["message_type"] == "market_data" and m["topic"] == "market_data:AAPL" for m in messages
    )
    times = [when(m) for m in messages]
    assert times == sorted(times)
    seeded = times[:HISTORY_TICKS]
    assert {b - a for a, b in pairwise(seeded)} == {timedelta(seconds=1)}
    assert all(m["timestamp"] == m["data"]["timestamp"] for m in messages[:HISTORY_TICKS])
    # The first live message is the subscriber's snapshot, built when it subscribed.
    assert times[HISTORY_TICKS] - seeded[-1] < timedelta(seconds=10), "seeded up to the start"
    schema = load_committed_schema()
    validator = jsonschema.Draft202012Validator(schema)
    for message in messages:
        validator.validate(message)
    # The whole body is described in the same document (x-rest-bodies).
    assert "InstrumentHistory" in schema["x-rest-bodies"]
    body_schema = {"$ref": "#/$defs/InstrumentHistory", "$defs": schema["$defs"]}
    jsonschema.Draft202012Validator(body_schema).validate(body)
    bad = {**body, "seq": -1}
    assert not jsonschema.Draft202012Validator(body_schema).is_valid(bad)
    ws.close()


async def test_indicator_and_analytics_history(
    jp_fetch: Any, rtstream_app: Any, ws_connect: Any
) -> None:
    from .._wait import wait_until

    ws = await watch(ws_connect, ("analytics", "MSFT"))
    await wait_until(lambda: rtstream_app.hub.last_seq("analytics:MSFT") >= 1)
    app = await stopped(rtstream_app)
    body = await history(jp_fetch, "MSFT", kind="technical_indicators", limit=5)
    assert [m["seq"] for m in body["messages"]] == [1, 2, 3, 4, 5]
    assert body["messages"][0]["data"]["indicators"].keys() >= {"sma_20", "rsi_14"}
    analytics = await history(jp_fetch, "MSFT", kind="analytics")
    assert analytics["topic"] == "analytics:MSFT"
    assert [m["seq"] for m in analytics["messages"]] == list(
        range(1, app.hub.last_seq("analytics:MSFT") + 1)
    ), "analytics has no seeded history: only what was published"
    ws.close()


async def test_limit_and_paging_by_seq(jp_fetch: Any, rtstream_app: Any) -> None:
    app = await stopped(rtstream_app)
    everything = (await history(jp_fetch, limit=10_000))["messages"]
    assert len(everything) == app.hub.last_seq("market_data:AAPL") >= HISTORY_TICKS
    pages: list[list[dict[str, Any]]] = []
    since = 0
    while True:
        page = (await history(jp_fetch, since=since, limit=7))["messages"]
        pages.append(page)
        if len(page) < 7:
            break
        since = page[-1]["seq"]
    assert all(len(p) == 7 for p in pages[:-1])
    assert [m for p in pages for m in p] == everything
    assert (await history(jp_fetch, since=10, limit=3))["messages"] == everything[10:13]
    tail = (await history(jp_fetch, since=len(everything)))["messages"]
    assert tail == [], "nothing after the last seq"
    assert (await history(jp_fetch, since=2**63 - 1))["messages"] == []


async def test_since_a_time(jp_fetch: Any, rtstream_app: Any) -> None:
    await stopped(rtstream_app)
    everything = (await history(jp_fetch, limit=10_000))["messages"]
    k = 17
    at = everything[k]["timestamp"]
    assert (await history(jp_fetch, since=at))["messages"] == everything[k:]
    offset = when(everything[k]).astimezone().isoformat()  # the same instant, local offset
    assert (await history(jp_fetch, since=offset, limit=2))["messages"] == everything[k : k + 2]
    naive = when(everything[k]).replace(tzinfo=None).isoformat()  # naive means UTC
    assert (await history(jp_fetch, since=naive, limit=1))["messages"] == [everything[k]]
    between = (when(everything[k]) - timedelta(milliseconds=1)).isoformat()
    assert (await history(jp_fetch, since=between, limit=1))["messages"] == [everything[k]]
    late = (when(everything[-1]) + timedelta(seconds=1)).isoformat()
    assert (await history(jp_fetch, since=late))["messages"] == []
    early = "2000-01-01T00:00:00Z"
    assert (await history(jp_fetch, since=early, limit=10_000))["messages"] == everything


@pytest.mark.parametrize(
    ("params", "mentions"),
    [
        ({"kind": "alerts"}, "kind"),
        ({"kind": "nope"}, "kind"),
        ({"limit": "0"}, "limit"),
        ({"limit": "10001"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"since": "-1"}, "since"),
        ({"since": str(2**63)}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "9" * 100}, "since"),
    ],
)
async def test_bad_parameters_are_400(
    jp_fetch: Any, rtstream_app: Any, params: dict[str, str], mentions: str
) -> None:
    code, body = await refused(jp_fetch, **params)
    assert code == 400
    assert body["error_code"] == "INVALID_MESSAGE" and mentions in body["error_message"]


async def test_unknown_symbol_is_404(jp_fetch: Any, rtstream_app: Any) -> None:
    code, body = await refused(jp_fetch, "NOPE")
    assert (code, body["error_code"]) == (404, "UNKNOWN_INSTRUMENT")


async def test_history_requires_auth(jp_fetch: Any, rtstream_app: Any) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_fetch(
            "rtstream", "api", "instruments", "AAPL", "history", headers={"Authorization": ""}
        )
    assert exc.value.code == 403
