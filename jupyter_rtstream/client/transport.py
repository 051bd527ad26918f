"""The Tornado side of the client: open a WebSocket, drop or close it, fetch alert history.

Kept apart from :mod:`.stream` (which wires the protocol to the loop) so that everything
that knows about Tornado's objects is in one place; nothing here decides anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError
from tornado.websocket import WebSocketClientConnection, WebSocketError, websocket_connect

from ..core.backoff import parse_retry_after
from ..core.messages import SUBPROTOCOL
from .discovery import ServerInfo
from .lifecycle import AUTH_REFUSED_HTTP
from .options import StreamOptions


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
            max_message_size=options.max_message_size,
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


@dataclass(frozen=True)
class OpenFailure:
    """What a failed :meth:`Socket.open` tells the protocol (its ``connection_failed`` args)."""

    http_status: int | None = None
    retry_after: float | None = None
    timeout: bool = False
    overload: bool = False


def classify_open_error(exc: BaseException) -> OpenFailure:
    """Sort Tornado's exceptions: an HTTP answer (with ``Retry-After``), a timeout, or
    refused/reset (everything else that happens before the upgrade completes)."""
    if isinstance(exc, HTTPTimeoutError | asyncio.TimeoutError | TimeoutError):
        return OpenFailure(timeout=True)
    if isinstance(exc, HTTPClientError) and exc.code != 599:
        header = exc.response.headers.get("Retry-After") if exc.response is not None else None
        return OpenFailure(exc.code, parse_retry_after(header, time.time()))
    if isinstance(exc, WebSocketError | ssl.SSLError):
        # Something answers, but not a WebSocket (a 2xx page) or not with a valid TLS
        # handshake: not "nothing listens", so no quick retries; back off as from an overload.
        return OpenFailure(overload=True)
    return OpenFailure()


def describe_http_error(server: ServerInfo, exc: HTTPClientError) -> str:
    """What a refused or failed upgrade means, with the hint that fixes it."""
    if exc.code in AUTH_REFUSED_HTTP:
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
