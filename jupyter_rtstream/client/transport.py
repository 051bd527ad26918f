"""The Tornado side of the client: open a WebSocket, drop or close it, fetch alert history.

Kept apart from :mod:`.stream` (which wires the protocol to the loop) so that everything
that knows about Tornado's objects is in one place; nothing here decides anything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, websocket_connect

from ..core.messages import SUBPROTOCOL
from .discovery import ServerInfo
from .options import StreamOptions
from .protocol import FINAL_HTTP


class Socket:
    """One connection attempt's WebSocket (the protocol's ``Link`` with the same id)."""

    def __init__(self, link: int) -> None:
        self.link = link
        self.ws: WebSocketClientConnection | None = None
        self.closed = asyncio.Event()
        #: Set when the watcher must re-plan: closed, or the protocol's deadline moved up.
        self.wakeup = asyncio.Event()
        self.wake_at: float | None = None
        self.dropped = False

    async def open(
        self,
        server: ServerInfo,
        options: StreamOptions,
        on_frame: Callable[[str | bytes | None], None],
    ) -> None:
        """TCP connect + upgrade (bounded by ``open_timeout``); frames go to ``on_frame``."""
        request = HTTPRequest(
            server.ws_url,
            headers=server.headers(),
            connect_timeout=options.open_timeout,
            request_timeout=options.open_timeout,
            validate_cert=options.validate_cert,
        )
        self.ws = await websocket_connect(
            request,
            on_message_callback=on_frame,
            subprotocols=[SUBPROTOCOL] if options.subprotocol else None,
        )

    @property
    def writable(self) -> bool:
        return self.ws is not None and not self.dropped and not self.closed.is_set()

    def abort(self) -> None:
        """Drop the socket now, without a closing handshake (dead or replaced connection)."""
        self.dropped = True
        ws = self.ws
        if ws is not None:
            iostream = getattr(ws.protocol, "stream", None)
            with contextlib.suppress(Exception):
                ws.close()
            if iostream is not None:
                iostream.close()
        self.closed.set()
        self.wakeup.set()

    async def close(self, timeout: float) -> None:
        """Closing handshake (code 1000), then drop the socket if the server is silent."""
        ws = self.ws
        if ws is not None and not self.closed.is_set():
            iostream = getattr(ws.protocol, "stream", None)
            with contextlib.suppress(Exception):
                ws.close(1000, "client closed")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.closed.wait(), timeout)
            if iostream is not None and not iostream.closed():
                iostream.close()
        self.closed.set()
        self.wakeup.set()


def describe_http_error(server: ServerInfo, exc: HTTPClientError) -> str:
    """What a refused or failed upgrade means, with the hint that fixes it."""
    if exc.code in FINAL_HTTP:
        return (
            f"the server at {server.url} refused our credentials (HTTP {exc.code}) "
            f"for {server.ws_url}; token from {server.source}"
            f"{'' if server.token else ' (no token)'}. Not retrying: pass the "
            "right token= or set JUPYTER_RTSTREAM_TOKEN."
        )
    if exc.code == 599:
        return f"could not connect to {server.ws_url}: {exc.message}"
    hint = ""
    if exc.code == 404:
        hint = " (is the jupyter_rtstream server extension enabled at this base URL?)"
    return f"WebSocket upgrade to {server.ws_url} refused: HTTP {exc.code}{hint}"
