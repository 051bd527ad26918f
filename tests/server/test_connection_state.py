"""What an open ``rtstream/ws`` connection keeps (issue 15, idle memory per client), and
the server-wide keep-alive that replaced jupyter_server's timer per connection."""

from __future__ import annotations

import asyncio
import base64
import os
from collections import deque
from typing import Any

import pytest

from jupyter_rtstream.server.keepalive import KeepAlive
from jupyter_rtstream.server.ws_handler import _FRAME_LOOPS

from .._wait import wait_until
from ..conftest import RTSTREAM_TEST_CONFIG
from .conftest import of_type, recv_until, send


@pytest.fixture
def tornado_settings() -> dict[str, Any]:
    return {}


@pytest.fixture
def jp_server_config(rtstream_config: dict[str, Any], tornado_settings: dict[str, Any]) -> Any:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_rtstream": True, "jupyter_server_terminals": False},
            "tornado_settings": tornado_settings,
        },
        "RtstreamApp": {**RTSTREAM_TEST_CONFIG, **rtstream_config},
    }


def _tasks_running_for(obj: object) -> list[asyncio.Task[Any]]:
    """Pending tasks whose outermost coroutine is a method of ``obj``."""
    found = []
    for task in asyncio.all_tasks():
        frame = getattr(task.get_coro(), "cr_frame", None)
        if frame is not None and frame.f_locals.get("self") is obj:
            found.append(task)
    return found


async def test_open_connection_keeps_no_handshake_state(ws_connect: Any, rtstream_app: Any) -> None:
    ws = await ws_connect()
    await send(ws, message_type="subscribe", subscription_type="market_data", symbol="AAPL")
    await recv_until(ws, of_type("ack"))
    (handler,) = rtstream_app.connections
    request = handler.request
    # The handshake's request state: read by auth, origin check and open(), then released.
    assert not request.headers and not request.arguments and not request.query_arguments
    assert request.connection is None and request.server_connection is None
    assert not hasattr(request, "_cookies")
    # The 101's response headers and the login cookie went out with the handshake.
    assert not handler._headers and not hasattr(handler, "_new_cookie")
    assert handler.ui is None
    # The stream's write queues are lists (an empty deque holds a 64-slot block).
    stream = handler.ws_connection.stream
    assert not isinstance(stream._write_futures, deque)
    assert not isinstance(stream._write_buffer._buffers, deque)
    # What the connection and its log lines still use is there.
    assert request.path.endswith("rtstream/ws") and request.remote_ip == "127.0.0.1"
    assert handler.current_user is not None and handler.user == "token"
    # No keep-alive timer or task of its own: the server's one timer pings it.
    assert handler.ping_callback is None
    assert handler.ws_connection._ping_coroutine is None
    assert rtstream_app.keepalive.running
    assert rtstream_app.keepalive.interval_ms == handler.ping_interval > 0
    # The handshake's coroutines (Tornado's _execute, the auth wrappers, get()) finished:
    # only the frame loop runs for this connection.
    assert _tasks_running_for(handler) == []
    (frame_loop,) = _tasks_running_for(handler.ws_connection)
    assert frame_loop in _FRAME_LOOPS
    # ... and the connection works as before.
    await send(ws, message_type="ping", request_id="still-here")
    ack = await recv_until(ws, of_type("ack"))
    assert ack["data"]["request_id"] == "still-here"
    # Closed: the session goes, and the frame loop ends and lets go of its reference.
    ws.close()
    await wait_until(lambda: not rtstream_app.connections, what="connection released")
    await wait_until(frame_loop.done, what="frame loop ended")
    assert frame_loop not in _FRAME_LOOPS


async def _silent_peer(port: int, path: str, headers: dict[str, str]) -> Any:
    """A WebSocket upgrade over a raw socket that never reads again (so never pongs)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    response = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert response.startswith(b"HTTP/1.1 101"), response
    return reader, writer


@pytest.mark.parametrize("tornado_settings", [{"ws_ping_interval": 200, "ws_ping_timeout": 3000}])
async def test_one_keepalive_timer_pings_everyone_and_closes_a_silent_peer(
    ws_connect: Any,
    rtstream_app: Any,
    jp_http_port: int,
    jp_base_url: str,
    jp_auth_header: dict[str, str],
) -> None:
    live = await ws_connect()  # Tornado's client answers every ping
    (live_handler,) = rtstream_app.connections
    reader, writer = await _silent_peer(jp_http_port, f"{jp_base_url}rtstream/ws", jp_auth_header)
    try:
        await wait_until(lambda: len(rtstream_app.connections) == 2, what="both open")
        assert rtstream_app.keepalive.interval_ms == 200
        # The silent peer is pinged (an empty ping frame, 0x89 0x00, behind the greeting).
        seen = b""
        while b"\x89\x00" not in seen:
            seen += await asyncio.wait_for(reader.read(4096), 10)
        # Its pongs never come: closed past ws_ping_timeout and released; the live one stays.
        await wait_until(lambda: len(rtstream_app.connections) == 1, what="silent peer closed")
        assert rtstream_app.connections == {live_handler}
        await send(live, message_type="ping", request_id="alive")
        assert (await recv_until(live, of_type("ack")))["data"]["request_id"] == "alive"
    finally:
        writer.close()


@pytest.mark.parametrize("rtstream_config", [{"websocket_compression": True}])
async def test_compressed_connection_streams_through_the_shared_parameters(
    jp_ws_fetch: Any, rtstream_app: Any, rtstream_config: Any
) -> None:
    # Two connections negotiate permessage-deflate from the one shared parameter object,
    # and stream through Tornado's write_message path (frames are compressed per client).
    sockets = [await jp_ws_fetch("rtstream", "ws", compression_options={}) for _ in range(2)]
    for ws in sockets:
        await send(ws, message_type="subscribe", subscription_type="market_data", symbol="AAPL")
        await recv_until(ws, of_type("ack"))
    handlers = list(rtstream_app.connections)
    assert len(handlers) == 2
    assert all(h.ws_connection._compressor is not None for h in handlers)
    assert handlers[0].ws_connection.params is handlers[1].ws_connection.params
    for ws in sockets:
        first = (await recv_until(ws, of_type("market_data")))["seq"]
        second = (await recv_until(ws, of_type("market_data")))["seq"]
        assert second > first


def test_the_keepalive_does_not_start_again_once_stopped() -> None:
    """A handshake that completes while the server shuts down (after ``stop_extension``
    stopped the timer) must not leave a timer running."""
    keepalive = KeepAlive(set())
    keepalive.stop()
    keepalive.start(1000.0)
    assert not keepalive.running
