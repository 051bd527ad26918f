"""Tuning knobs of a stream (pure data, shared by the protocol and its asyncio adapter)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class StreamOptions:
    """Tuning knobs, passed as keyword arguments to :func:`connect` / :class:`Stream`."""

    #: Full-jitter exponential backoff on overload signals: the delay at escalation level n
    #: is uniform(0, min(cap, base * factor**n)), never below the server's retry_after.
    #: (While nothing listens the client retries every uniform(0.25, 1.0) s instead; see
    #: :mod:`jupyter_rtstream.core.backoff`.)
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    backoff_factor: float = 2.0
    #: Random source of the jitter (tests pass a seeded one).
    rng: random.Random | None = None
    #: A connection up this long after its connection_status resets the overload level.
    stable_after: float = 10.0
    #: Frames larger than this (bytes) are refused and the connection dropped.
    max_message_size: int = 1024 * 1024
    #: A connection silent for this many heartbeat intervals is dead (half-open): replace it.
    missed_heartbeats: float = 2.0
    #: Heartbeat interval assumed until the server announces its own (seconds).
    heartbeat_interval: float = 15.0
    #: Budget of one attempt: TCP connect + WebSocket upgrade + first connection_status.
    open_timeout: float = 10.0
    #: ``connect()`` gives up when not connected after this long (retrying meanwhile).
    connect_timeout: float = 30.0
    #: How long subscribe / unsubscribe / ping wait for the server's ack.
    request_timeout: float = 10.0
    #: Messages buffered for ``async for`` (the oldest are dropped beyond; 0 disables).
    queue_size: int = 10_000
    #: Also yield connection_status, ack and error messages from ``async for``.
    control_messages: bool = False
    #: After an unrecoverable gap on an alert topic, fetch the missed alerts over REST.
    alert_gap_fill: bool = True
    #: Offer the ``rtstream.v1`` WebSocket subprotocol.
    subprotocol: bool = True
    #: Verify TLS certificates (https servers).
    validate_cert: bool = True


#: Heartbeat intervals a server may announce are clamped to this range (seconds): a tiny
#: one would make the client declare healthy connections dead; a huge one would switch off
#: dead-connection detection. 0 (or less) keeps its meaning: "this server sends none".
MIN_HEARTBEAT = 1.0
MAX_HEARTBEAT = 300.0


def clamp_heartbeat(value: float | None) -> float | None:
    """The server's ``heartbeat_interval``, trusted only within sane bounds."""
    if value is None or value <= 0:
        return value
    return min(max(value, MIN_HEARTBEAT), MAX_HEARTBEAT)
