"""A client that stops reading: conflation for it, 1013 when alerts cannot fit, nobody else
affected. The stuck client is a raw socket that completes the upgrade and never reads; the
server side of its socket gets a tiny send buffer (an injected failure) so its outbox backs
up in milliseconds instead of after megabytes of kernel buffering."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest

from jupyter_rtstream.core.framing import text_frame

from .._wait import wait_until
from .conftest import of_type, recv_until, send
from .test_rest import get_json, post_json

pytestmark = pytest.mark.parametrize(
    "rtstream_config", [{"outbox_max_messages": 40, "tick_rate": 40.0}]
)


def masked_text_frame(text: str) -> bytes:
    return text_frame(text, mask=os.urandom(4))


async def stuck_client(port: int, base_url: str, token: str) -> socket.socket:
    """Upgrade, subscribe to everything, then never read again. Non-blocking: the server
    runs on this event loop, so a blocking read here would stall it."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    await loop.sock_sendall(
        sock,
        (
            f"GET {base_url}rtstream/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: token {token}\r\n\r\n"
        ).encode(),
    )
    head = b""
    while len(head) < 12:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 12 - len(head)), 30)
        assert chunk, "the server closed the upgrade"
        head += chunk
    assert head == b"HTTP/1.1 101"
    for kind in ("market_data", "technical_indicators"):
        for symbol in ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA"):
            await loop.sock_sendall(
                sock,
                masked_text_frame(
                    json.dumps(
                        {"message_type": "subscribe", "subscription_type": kind, "symbol": symbol}
                    )
                ),
            )
    await loop.sock_sendall(
        sock,
        masked_text_frame('{"message_type":"subscribe","subscription_type":"alerts","symbol":"*"}'),
    )
    return sock


async def test_slow_consumer_is_conflated_then_closed_1013_others_unaffected(
    jp_fetch: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_serverapp: Any,
    ws_connect: Any,
    rtstream_app: Any,
    rtstream_config: Any,
) -> None:
    healthy = await ws_connect()
    for kind, symbol in (("market_data", "AAPL"), ("alerts", "*")):
        await send(healthy, message_type="subscribe", subscription_type=kind, symbol=symbol)
        await recv_until(healthy, of_type("ack"))
    stuck = await stuck_client(jp_http_port, jp_base_url, jp_serverapp.identity_provider.token)

    def stuck_connections() -> list[Any]:
        return [c for c in rtstream_app.connections if len(c.session.outbox.subscriptions) == 11]

    await wait_until(lambda: len(stuck_connections()) == 1, 30, "the stuck client's 11 topics")
    (slow,) = stuck_connections()
    slow.ws_connection.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

    # Market data keeps flowing; the stuck client lags and its frames are conflated.
    seqs: list[int] = []
    while not slow.session.outbox.conflated:
        msg = await recv_until(healthy, lambda m: m["message_type"] == "market_data", 5)
        seqs.append(msg["seq"])
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "the healthy client has no gap"
    status = await get_json(jp_fetch, "status")
    by_id = {c["client_id"]: c for c in status["clients"]}
    assert by_id[slow.session.client_id]["conflated"] > 0
    assert by_id[healthy.hello["data"]["client_id"]]["conflated"] == 0
    assert len(slow.session.outbox) <= 40

    # Alerts are never conflated: when they no longer fit, the stuck client is closed 1013.
    await post_json(jp_fetch, "ticks", body={"ticks": [{"symbol": "XYZ", "price": 99.0}]})
    rule = {
        "rule_name": "flip",
        "symbol": "XYZ",
        "condition": "price_above",
        "target_value": 100.0,
        "severity": "low",
        "cooldown_seconds": 0.0,
    }
    assert (await post_json(jp_fetch, "alerts", "rules", body=rule))[0] == 201
    # Two batches of 30 alerts: each fits a healthy reader's outbox (40 messages), but the
    # stuck client keeps all of them (it never drains), so 60 cannot fit however much the
    # kernel's socket buffers absorbed before, and it is closed at the latest in batch two.
    ids: list[int] = []
    for _ in range(2):
        prices = [99.0, 101.0] * 30  # one alert per crossing
        await post_json(
            jp_fetch, "ticks", body={"ticks": [{"symbol": "XYZ", "price": p} for p in prices]}
        )
        alerts = [await recv_until(healthy, of_type("alert")) for _ in range(30)]
        ids += [a["data"]["alert_id"] for a in alerts]
    await wait_until(lambda: slow.session.close_request is not None, what="the 1013 close")
    assert slow.session.close_request is not None
    assert slow.session.close_request[0] == 1013
    assert json.loads(slow.session.close_request[1])["reason"] == "SLOW_CONSUMER"
    # Closed now; Tornado aborts it if the peer never answers the closing handshake (5 s).
    await wait_until(lambda: slow not in rtstream_app.connections, 30, "the stuck client gone")
    # The healthy client got every alert, in order, once.
    assert ids == sorted(set(ids)) and len(ids) == 60
    stuck.close()
