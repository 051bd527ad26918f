"""Python client of the rtstream protocol: discovery, reconnection, resume, typed dispatch.

``stream = await jupyter_rtstream.connect()`` (see :mod:`.stream`). The decisions live in
the sans-I/O :class:`~.protocol.ClientProtocol` (with :mod:`.state`, :mod:`.requests` and
:mod:`.events`); :mod:`.runner` is its asyncio adapter and :mod:`.stream` the public face;
:mod:`.rest` is the one REST client (alert history, rules, ticks). Imports tornado and
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
from .health import Health, TopicHealth
from .options import StreamOptions
from .protocol import ClientProtocol
from .rest import RestAPI, RestError
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
    "Health",
    "NotConnectedError",
    "ReconnectPolicy",
    "RequestError",
    "RestAPI",
    "RestError",
    "ServerInfo",
    "StateChange",
    "Stream",
    "StreamClosed",
    "StreamOptions",
    "StreamStats",
    "TopicHealth",
    "connect",
    "discover",
]
