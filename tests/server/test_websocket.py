"""The rtstream/ws endpoint end to end: real server, real WebSocket clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from typing import Any

import pytest
from tornado.httpclient import HTTPClientError
from tornado.websocket import WebSocketClientConnection

from jupyter_rtstream.core.messages import server_message_adapter

from .._wait import wait_until
from .conftest import of_type, recv, recv_until, send


def assert_valid(message: dict[str, Any]) -> None:
    """Every frame the server sends validates against the protocol models."""
    server_message_adapter.validate_python(message)


async def subscribe(ws: Any, kind: str = "market_data", symbol: str = "AAPL", **extra: Any):
    await send(ws, message_type="subscribe", subscription_type=kind, symbol=symbol, **extra)
    return await recv_until(ws, of_type("ack"))


async def test_greeting_is_connection_status(ws_connect: Any, rtstream_app: Any) -> None:
    ws = await ws_connect()
    data = ws.hello["data"]
    assert_valid(ws.hello)
    assert data["epoch"] == rtstream_app.hub.epoch
    assert data["protocol_versions"] == ["1.0"]
    assert data["subscriptions"] == []
    assert ws.hello["timestamp"].endswith("Z")


async def test_unauthenticated_upgrade_is_refused(jp_ws_fetch: Any, rtstream_app: Any) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch("rtstream", "ws", headers={"Authorization": ""})
    assert exc.value.code == 403


async def test_wrong_token_is_refused(jp_ws_fetch: Any, rtstream_app: Any) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch("rtstream", "ws", headers={"Authorization": "token nope"})
    assert exc.value.code == 403


async def test_forged_host_is_refused(jp_ws_fetch: Any, rtstream_app: Any) -> None:
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch("rtstream", "ws", headers={"Host": "evil.example:80"})
    assert exc.value.code == 403


async def _login_cookie(jp_fetch: Any, jp_serverapp: Any) -> str:
    token = jp_serverapp.identity_provider.token
    response = await jp_fetch(
        "api", "status", params={"token": token}, headers={"Authorization": ""}
    )
    cookies = response.headers.get_list("Set-Cookie")
    assert cookies, "token in the URL should set the login cookie"
    return "; ".join(c.split(";", 1)[0] for c in cookies)


async def test_cookie_upgrade_from_foreign_origin_is_refused(
    jp_ws_fetch: Any, jp_fetch: Any, jp_serverapp: Any, jp_http_port: int, rtstream_app: Any
) -> None:
    cookie = await _login_cookie(jp_fetch, jp_serverapp)
    # The cookie is named after the host jp_fetch used (127.0.0.1), so present that host.
    host = f"127.0.0.1:{jp_http_port}"
    # Same origin with the cookie: accepted (so the refusal below is about the Origin).
    ws = await jp_ws_fetch(
        "rtstream",
        "ws",
        headers={"Authorization": "", "Cookie": cookie, "Host": host, "Origin": f"http://{host}"},
    )
    assert (await recv(ws))["message_type"] == "connection_status"
    ws.close()
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch(
            "rtstream",
            "ws",
            headers={
                "Authorization": "",
                "Cookie": cookie,
                "Host": host,
                "Origin": "http://evil.example",
            },
        )
    assert exc.value.code == 403


async def test_subprotocol_negotiation(jp_ws_fetch: Any, rtstream_app: Any) -> None:
    ws = await jp_ws_fetch("rtstream", "ws", subprotocols=["other", "rtstream.v1"])
    assert ws.selected_subprotocol == "rtstream.v1"
    ws.close()
    plain = await jp_ws_fetch("rtstream", "ws", subprotocols=["something-else"])
    assert plain.selected_subprotocol is None
    assert (await recv(plain))["message_type"] == "connection_status"
    with pytest.raises(HTTPClientError) as exc:
        await jp_ws_fetch("rtstream", "ws", subprotocols=["rtstream.v2"])
    assert exc.value.code == 400


async def test_tcp_nodelay_is_set(ws_connect: Any, rtstream_app: Any) -> None:
    await ws_connect()
    (conn,) = rtstream_app.connections
    sock = conn.ws_connection.stream.socket
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_subscribe_ack_then_snapshot_then_increasing_seq(ws_connect: Any) -> None:
    ws = await ws_connect()
    await send(
        ws,
        message_type="subscribe",
        subscription_type="market_data",
        symbol="aapl",
        request_id="r-1",
    )
    ack = await recv_until(ws, lambda m: m["message_type"] != "connection_status")
    assert ack["message_type"] == "ack", "the ack comes before any data of the topic"
    position = ack["data"].pop("seq")
    assert ack["data"] == {
        "request_id": "r-1",
        "action": "subscribe",
        "topic": "market_data:AAPL",
        "subscriptions": ["market_data:AAPL"],
        "recovered": None,
        "last_alert_id": None,
        "store_id": None,
    }
    seqs = []
    while len(seqs) < 6:
        msg = await recv_until(ws, of_type("market_data"))
        assert_valid(msg)
        assert msg["topic"] == "market_data:AAPL"
        assert msg["data"]["symbol"] == "AAPL" and msg["data"]["instrument_id"] == 1
        assert msg["data"]["price"] > 0
        seqs.append(msg["seq"])
    # The snapshot is the topic's last frame (the ack's position); later frames follow it.
    assert seqs[0] == position and all(seq > position for seq in seqs[1:])
    assert seqs == list(range(seqs[0], seqs[0] + 6)), "seq is +1 per message on a topic"


async def test_subscribe_by_instrument_id(ws_connect: Any) -> None:
    ws = await ws_connect()
    await send(ws, message_type="subscribe", subscription_type="market_data", instrument_id=5)
    ack = await recv_until(ws, of_type("ack"))
    assert ack["data"]["topic"] == "market_data:NVDA"


async def test_unsubscribe_stops_the_stream(ws_connect: Any) -> None:
    ws = await ws_connect()
    await subscribe(ws, symbol="MSFT")
    await recv_until(ws, of_type("market_data"))
    await send(
        ws,
        message_type="unsubscribe",
        subscription_type="market_data",
        symbol="MSFT",
        request_id="u",
    )
    ack = await recv_until(ws, of_type("ack"))
    assert ack["data"]["action"] == "unsubscribe" and ack["data"]["subscriptions"] == []
    # At 40 ticks/s, half a second of silence proves nothing more arrives for the topic.
    await send(ws, message_type="ping", request_id="p")
    pong = await recv_until(ws, of_type("ack"), timeout=2)
    assert pong["data"]["action"] == "ping"
    with pytest.raises(asyncio.TimeoutError):
        await recv_until(ws, of_type("market_data"), timeout=0.5)


async def test_ping_is_acked_with_request_id(ws_connect: Any) -> None:
    ws = await ws_connect()
    await send(ws, message_type="ping", request_id=17)
    ack = await recv_until(ws, of_type("ack"))
    assert ack["data"]["request_id"] == "17" and ack["data"]["action"] == "ping"


async def test_resume_after_drop_replays_the_gap(ws_connect: Any, rtstream_app: Any) -> None:
    ws = await ws_connect()
    epoch = ws.hello["data"]["epoch"]
    await subscribe(ws, symbol="GOOG")
    last = (await recv_until(ws, of_type("market_data")))["seq"]
    ws.close()
    topic = rtstream_app.hub.topics["market_data:GOOG"]
    # Ticks keep coming while we are away.
    await wait_until(lambda: topic.seq > last + 3, what="the feed moving on")
    ws2 = await ws_connect()
    ack = await subscribe(ws2, symbol="GOOG", resume_from=last, epoch=epoch, request_id="r")
    assert ack["data"]["recovered"] is True
    target = topic.seq + 2  # the whole gap, then two live messages
    seqs = []
    while len(seqs) < target - last:
        seqs.append((await recv_until(ws2, of_type("market_data")))["seq"])
    assert seqs == list(range(last + 1, last + 1 + len(seqs))), "no gap, no duplicate"


async def test_resume_with_old_epoch_is_not_recovered(ws_connect: Any) -> None:
    ws = await ws_connect()
    ack = await subscribe(ws, symbol="AMZN", resume_from=0, epoch="an-old-epoch")
    assert ack["data"]["recovered"] is False
    # Instead of a replay, a fresh snapshot: the topic's latest message.
    snapshot = await recv_until(ws, of_type("market_data"))
    assert snapshot["topic"] == "market_data:AMZN" and snapshot["seq"] >= 1


@pytest.mark.parametrize(
    "rtstream_config", [{"replay_buffer_size": 3, "replay_buffer_seconds": 0.0}]
)
async def test_resume_beyond_buffer_is_not_recovered(
    ws_connect: Any, rtstream_app: Any, rtstream_config: Any
) -> None:
    watcher = await ws_connect()  # messages are built for watched topics only
    await subscribe(watcher, symbol="AAPL")
    ws = await ws_connect()
    epoch = ws.hello["data"]["epoch"]
    topic = rtstream_app.hub.topic("market_data:AAPL")
    while topic.published < 8:  # live messages (the seeded history has seqs too)
        await asyncio.sleep(0.05)
    assert len(topic.buffer) == 3, "the buffer keeps its configured size"
    ack = await subscribe(ws, symbol="AAPL", resume_from=1, epoch=epoch)
    assert ack["data"]["recovered"] is False
    snapshot = await recv_until(ws, of_type("market_data"))
    assert snapshot["seq"] >= topic.buffer[0][0]


# --------------------------------------------------------------------------- rejected frames

BAD_FRAMES = [
    ("{not json", "INVALID_JSON"),
    ("[1, 2]", "INVALID_MESSAGE"),
    ('{"request_id": "x"}', "INVALID_MESSAGE"),
    (
        '{"message_type": "subscribe", "subscription_type": "market_data", "request_id": "x"}',
        "INVALID_MESSAGE",
    ),
    (
        '{"message_type": "subscribe", "subscription_type": "bogus", "symbol": "AAPL",'
        ' "request_id": "x"}',
        "INVALID_MESSAGE",
    ),
    ('{"message_type": "teleport", "request_id": "x"}', "UNKNOWN_MESSAGE_TYPE"),
    ('{"message_type": "market_data", "request_id": "x"}', "UNKNOWN_MESSAGE_TYPE"),
    ('{"message_type": "ping", "version": "2.0", "request_id": "x"}', "UNSUPPORTED_VERSION"),
    (
        '{"message_type": "subscribe", "subscription_type": "market_data", "symbol": "ZZZZ",'
        ' "request_id": "x"}',
        "UNKNOWN_INSTRUMENT",
    ),
    (
        '{"message_type": "subscribe", "subscription_type": "market_data", "instrument_id": 99,'
        ' "request_id": "x"}',
        "UNKNOWN_INSTRUMENT",
    ),
]


@pytest.mark.parametrize(("frame", "code"), BAD_FRAMES)
async def test_rejected_frames_get_typed_errors(ws_connect: Any, frame: str, code: str) -> None:
    ws = await ws_connect()
    await ws.write_message(frame)
    error = await recv_until(ws, of_type("error"))
    assert_valid(error)
    assert error["data"]["error_code"] == code
    assert error["data"]["error_message"]
    if '"request_id": "x"' in frame:
        assert error["data"]["request_id"] == "x"
    # The connection carries on.
    await send(ws, message_type="ping", request_id="after")
    assert (await recv_until(ws, of_type("ack")))["data"]["request_id"] == "after"


async def test_newer_minor_version_with_unknown_fields_is_accepted(ws_connect: Any) -> None:
    ws = await ws_connect()
    await send(
        ws,
        message_type="subscribe",
        version="1.9",
        subscription_type="market_data",
        symbol="AAPL",
        request_id="n",
        priority="high",
        compression={"future": True},
    )
    ack = await recv_until(ws, lambda m: m["message_type"] in {"ack", "error"})
    assert ack["message_type"] == "ack" and ack["data"]["topic"] == "market_data:AAPL"


@pytest.mark.parametrize("rtstream_config", [{"max_subscriptions": 3}])
async def test_subscription_limit(ws_connect: Any, rtstream_config: Any) -> None:
    ws = await ws_connect()
    for symbol in ("AAPL", "MSFT", "GOOG"):
        await subscribe(ws, symbol=symbol)
    await send(
        ws,
        message_type="subscribe",
        subscription_type="market_data",
        symbol="NVDA",
        request_id="4th",
    )
    error = await recv_until(ws, of_type("error"))
    assert error["data"]["error_code"] == "SUBSCRIPTION_LIMIT"
    assert error["data"]["request_id"] == "4th"
    # Re-subscribing to a topic already held is not a new subscription.
    ack = await subscribe(ws, symbol="AAPL")
    assert len(ack["data"]["subscriptions"]) == 3


async def test_internal_error_is_typed_and_survivable(
    ws_connect: Any, rtstream_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await ws_connect()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("injected failure")

    monkeypatch.setattr(rtstream_app.hub, "subscribe", broken)
    await send(
        ws,
        message_type="subscribe",
        subscription_type="market_data",
        symbol="AAPL",
        request_id="boom",
    )
    error = await recv_until(ws, of_type("error"))
    assert error["data"]["error_code"] == "INTERNAL_ERROR"
    assert error["data"]["request_id"] is None or error["data"]["request_id"] == "boom"
    monkeypatch.undo()
    ack = await subscribe(ws, symbol="AAPL")
    assert ack["data"]["topic"] == "market_data:AAPL"


async def _close_info(ws: WebSocketClientConnection) -> tuple[int | None, Any]:
    while True:
        msg = await asyncio.wait_for(ws.read_message(), 5)
        if msg is None:
            break
    reason = ws.close_reason
    with contextlib.suppress(ValueError):
        reason = json.loads(reason) if reason else reason
    return ws.close_code, reason


async def test_oversize_frame_closes_1009_and_others_carry_on(
    ws_connect: Any, jp_fetch: Any
) -> None:
    other = await ws_connect()
    await subscribe(other, symbol="AAPL")
    ws = await ws_connect()
    await ws.write_message(json.dumps({"message_type": "ping", "pad": "x" * 70_000}))
    error = await recv_until(ws, of_type("error"))
    assert error["data"]["error_code"] == "MESSAGE_TOO_LARGE"
    code, reason = await _close_info(ws)
    assert code == 1009
    assert reason["reason"] == "MESSAGE_TOO_LARGE"
    # The server's own record of the closes it asked for (the layer's 1009 below is Tornado's).
    status = json.loads((await jp_fetch("rtstream", "api", "status")).body)
    assert status["server_closes"] == {"1009": 1}
    # A frame far above the limit is stopped by the WebSocket layer itself: still 1009.
    ws = await ws_connect()
    await ws.write_message("x" * 300_000)
    code, _ = await _close_info(ws)
    assert code == 1009
    await recv_until(other, of_type("market_data"))
    await send(other, message_type="ping", request_id="still-here")
    assert (await recv_until(other, of_type("ack")))["data"]["request_id"] == "still-here"


async def test_binary_frame_closes_1003(ws_connect: Any) -> None:
    ws = await ws_connect()
    await ws.write_message(b"\x00\x01", binary=True)
    code, reason = await _close_info(ws)
    assert code == 1003 and reason["reason"] == "BINARY_FRAME"


async def test_flood_of_malformed_frames(ws_connect: Any, rtstream_app: Any) -> None:
    """1,000 malformed frames: each is answered with a typed error, RATE_LIMITED past the
    budget, then a 1008 close; the server and another client are unaffected."""
    bystander = await ws_connect()
    await subscribe(bystander, symbol="NVDA")
    ws = await ws_connect()
    for i in range(1000):
        ws.write_message(f"garbage {i}")
    codes: list[str] = []
    while True:
        msg = await recv(ws, timeout=10)
        if msg is None:
            break
        if msg["message_type"] == "error":
            codes.append(msg["data"]["error_code"])
    assert ws.close_code == 1008
    reason = json.loads(ws.close_reason)
    assert reason["reason"] == "RATE_LIMITED" and reason["retry_after"] > 0
    # What holds at any speed: the token bucket refills on the server's clock while it works
    # through the burst, so a slow machine may accept a few frames between RATE_LIMITED ones
    # (the exact pattern is the limiter's contract, pinned with a fake clock in
    # tests/core/test_session.py).
    assert set(codes) == {"INVALID_JSON", "RATE_LIMITED"}
    burst, tolerance = rtstream_app.limits.rate_burst, rtstream_app.limits.flood_tolerance
    assert codes[:burst] == ["INVALID_JSON"] * burst, "the burst budget is honoured first"
    assert codes.count("RATE_LIMITED") > tolerance, "closed only past the flood tolerance"
    assert codes[-1] == "RATE_LIMITED", "the frame that tipped it over is answered too"
    # Every frame the server read before closing was answered.
    seq_before = (await recv_until(bystander, of_type("market_data")))["seq"]
    seq_after = (await recv_until(bystander, of_type("market_data")))["seq"]
    assert seq_after == seq_before + 1
    fresh = await ws_connect()
    await send(fresh, message_type="ping", request_id="ok")
    assert (await recv_until(fresh, of_type("ack")))["data"]["request_id"] == "ok"


@pytest.mark.parametrize("rtstream_config", [{"heartbeat_interval": 0.2}])
async def test_heartbeat_repeats_connection_status(ws_connect: Any, rtstream_config: Any) -> None:
    ws = await ws_connect()
    await subscribe(ws, symbol="AAPL")
    beat = await recv_until(ws, of_type("connection_status"), timeout=3)
    assert beat["data"]["subscriptions"] == ["market_data:AAPL"]
    assert beat["data"]["client_id"] == ws.hello["data"]["client_id"]
    assert beat["data"]["last_heartbeat"] >= ws.hello["data"]["last_heartbeat"]
