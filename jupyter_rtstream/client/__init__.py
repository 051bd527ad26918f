"""Python client of the rtstream protocol: discovery, reconnection, resume, typed dispatch.

``stream = await jupyter_rtstream.connect()`` (see :mod:`.stream`). The decisions live in
the sans-I/O :class:`~.protocol.ClientProtocol` (with :mod:`.state`, :mod:`.requests` and
:mod:`.events`); :mod:`.stream` is its asyncio adapter. Imports tornado and
pydantic only; jupyter_server is imported lazily, and only when discovery falls back to
the running-server files.
"""

from __future__ import annotations

from .discovery import ServerInfo, discover
from .errors import (
    AuthenticationError,
    ClientError,
    ConnectionLost,
    DiscoveryError,
    NotConnectedError,
    RequestError,
    StreamClosed,
)
from .options import StreamOptions
from .protocol import ClientProtocol
from .state import (
    CloseInfo,
    ConnectionState,
    GapEvent,
    ReconnectPolicy,
    StateChange,
    StreamStats,
)
from .stream import EVENTS, Stream, connect

__all__ = [
    "EVENTS",
    "AuthenticationError",
    "ClientError",
    "ClientProtocol",
    "CloseInfo",
    "ConnectionLost",
    "ConnectionState",
    "DiscoveryError",
    "GapEvent",
    "NotConnectedError",
    "ReconnectPolicy",
    "RequestError",
    "ServerInfo",
    "StateChange",
    "Stream",
    "StreamClosed",
    "StreamOptions",
    "StreamStats",
    "connect",
    "discover",
]
