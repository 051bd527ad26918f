"""Fixtures for tests against an in-process jupyter server (pytest-jupyter)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from jupyter_rtstream.server.app import RtstreamApp


@pytest.fixture
def rtstream_app(jp_serverapp: Any, jp_asyncio_loop: asyncio.AbstractEventLoop) -> RtstreamApp:
    """The extension app, started as ``jupyter server`` would (pytest-jupyter does not call
    ``_post_start``, so extensions' start hooks need this nudge)."""
    manager = jp_serverapp.extension_manager
    jp_asyncio_loop.run_until_complete(manager.start_all_extensions())
    for apps in manager.extension_apps.values():
        for app in apps:
            if isinstance(app, RtstreamApp):
                return app
    raise AssertionError("rtstream extension not loaded")


async def recv(ws: Any, timeout: float = 5.0) -> dict[str, Any] | None:
    """Next message as JSON, or None when the server closed the socket."""
    raw = await asyncio.wait_for(ws.read_message(), timeout)
    return None if raw is None else json.loads(raw)


async def recv_until(
    ws: Any, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5.0
) -> dict[str, Any]:
    """Skip messages (heartbeats, stream) until ``predicate`` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        msg = await recv(ws, max(0.01, deadline - loop.time()))
        if msg is None:
            raise AssertionError("connection closed while waiting")
        if predicate(msg):
            return msg


def of_type(message_type: str) -> Callable[[dict[str, Any]], bool]:
    return lambda m: m["message_type"] == message_type


async def send(ws: Any, **fields: Any) -> None:
    await ws.write_message(json.dumps(fields))


@pytest.fixture
def ws_connect(jp_ws_fetch: Any, rtstream_app: RtstreamApp) -> Callable[..., Any]:
    """Open ``rtstream/ws`` and consume the greeting ``connection_status``."""

    async def connect(**kwargs: Any) -> Any:
        ws = await jp_ws_fetch("rtstream", "ws", **kwargs)
        hello = await recv(ws)
        assert hello is not None and hello["message_type"] == "connection_status"
        ws.hello = hello
        return ws

    return connect
