"""The client's pure state: connection states, reconnect policy, what the application sees.

Nothing here does I/O; :mod:`.runner` drives it. The pieces:

- :class:`ConnectionState`, :class:`StateChange`: what the application observes.
- :class:`ReconnectPolicy` (defined in :mod:`jupyter_rtstream.core.backoff`, re-exported
  here): the delay before each attempt, per kind of failure.
- :class:`CloseInfo`: a close frame, parsed and with its ``retry_after`` clamped.
- :class:`GapEvent`: told to the application when a resume could not recover everything.
- :class:`StreamStats`: counters.

The subscriptions and their resume positions are in :mod:`.subscriptions`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import Enum
from typing import Literal

from ..core.backoff import ReconnectPolicy as ReconnectPolicy
from ..core.backoff import clamp_retry_after


class ConnectionState(str, Enum):
    """Lifecycle of a :class:`~jupyter_rtstream.client.Stream`.

    ``connecting``: first connection in progress. ``connected``: the server's
    ``connection_status`` arrived on a live socket. ``reconnecting``: the connection was lost
    or an attempt failed; waiting ``next_retry_at`` or trying again. ``disconnected``: final,
    after ``close()`` or an error that retrying cannot fix (an authentication refusal).
    """

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class StateChange:
    """Passed to ``stream.on("state", callback)`` on every state transition."""

    state: ConnectionState
    previous: ConnectionState
    attempts: int
    last_error: BaseException | None
    next_retry_at: datetime | None
    #: What a person should read: "connected", "server not reachable, retrying",
    #: "server busy (close 1013), retrying in 12 s", "refused: 403"...
    status_text: str = ""
    message_type: Literal["state"] = "state"


GapReason = Literal["epoch_changed", "out_of_buffer"]


@dataclass(frozen=True)
class GapEvent:
    """A resume the server could not satisfy (its ``ack`` said ``recovered: false``).

    ``reason`` is ``"epoch_changed"`` (the server restarted: sequence numbers start over)
    or ``"out_of_buffer"`` (the gap is older than the replay buffer). Messages between
    ``resume_from`` and the fresh snapshot that follows are lost for market data, indicators
    and analytics. For alert topics the client fills the gap from
    ``GET rtstream/api/alerts?since=<last alert_id>`` before telling you: ``filled`` is the
    number of alerts recovered that way (delivered as ordinary ``alert`` messages with
    ``seq == 0``), and ``fill_error`` says why filling failed, if it did.
    """

    topic: str
    reason: GapReason
    resume_from: int | None
    previous_epoch: str | None
    epoch: str | None
    filled: int | None = None
    fill_error: str | None = None
    message_type: Literal["gap"] = "gap"


@dataclass
class StreamStats:
    """Counters of one stream (``stream.stats``); never reset."""

    #: Frames received (valid or not).
    frames: int = 0
    #: Frames that were not a valid server message (bad JSON, unknown type, binary, ...).
    invalid_frames: int = 0
    #: Text of the last invalid frame's error, for diagnostics.
    last_invalid: str | None = None
    #: Streamed messages delivered to the application.
    delivered: int = 0
    #: Replayed messages dropped because they were already delivered (seq / alert_id).
    duplicates: int = 0
    #: Sequence numbers skipped within an epoch (server conflation or unrecoverable gaps).
    missed: int = 0
    #: Streamed messages for topics we are not subscribed to (in flight at unsubscribe).
    stray: int = 0
    #: Resumes answered ``recovered: false`` (one :class:`GapEvent` each).
    gaps: int = 0
    #: Alerts recovered from the alert history after a gap.
    alerts_filled: int = 0
    #: Connection attempts made, successful or not.
    connection_attempts: int = 0
    #: Connections established after the first one.
    reconnects: int = 0
    #: Exceptions raised by application callbacks (logged, then ignored).
    callback_errors: int = 0
    #: Messages dropped from the iteration queue because nobody consumed them in time.
    queue_overflow: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# --------------------------------------------------------------------------- reconnect


@dataclass(frozen=True)
class CloseInfo:
    """Why a connection ended, parsed from the close frame (JSON reason, see core.errors)."""

    code: int | None
    reason: str | None
    retry_after: float | None = None

    @classmethod
    def parse(cls, code: int | None, text: str | None) -> CloseInfo:
        reason, retry_after = text or None, None
        if text and text.startswith("{"):
            try:
                body = json.loads(text)
            except ValueError:
                body = None
            if isinstance(body, dict):
                reason = str(body.get("reason")) if body.get("reason") is not None else reason
                retry_after = clamp_retry_after(body.get("retry_after"))
        return cls(code, reason, retry_after)

    def __str__(self) -> str:
        text = f"closed with code {self.code}" if self.code is not None else "connection lost"
        if self.reason:
            text += f" ({self.reason})"
        return text
