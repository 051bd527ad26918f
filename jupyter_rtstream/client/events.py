"""What :class:`~.protocol.ClientProtocol` tells its I/O adapter, in order.

``protocol.events_received()`` returns these (plus :class:`~.state.StateChange` and
:class:`~.state.GapEvent`, which the application sees as they are). Each one is a decision
already taken; the adapter only carries it out: call callbacks, resolve a future, fetch the
alert history over REST, or drop a socket. None of them holds an I/O object, so tests can
compare them with ``==``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from ..core.messages import Ack, ControlMessage, StreamedMessage
from ..core.vocabulary import Action
from .state import GapEvent, StateChange


@dataclass(frozen=True)
class Delivered:
    """A streamed message for the application: new, in order, for a topic we follow."""

    message: StreamedMessage


@dataclass(frozen=True)
class ControlReceived:
    """A ``connection_status``, ``ack`` or ``error`` (for ``on(...)`` and ``control_messages``)."""

    message: ControlMessage


@dataclass(frozen=True)
class RequestOutcome:
    """The one answer to an application request (the ticket :meth:`subscribe` & co. returned).

    Exactly one of ``ack`` / ``error`` is set, except for an ``unsubscribe`` made while no
    connection was live (both ``None``: the server forgets subscriptions of closed connections).
    ``error`` is a :class:`~.errors.RequestError` (the server refused),
    :class:`~.errors.NotConnectedError` (the connection ended first) or
    :class:`~.errors.StreamClosed` (the stream stopped).
    """

    ticket: int
    action: Action
    topic: str | None
    ack: Ack | None = None
    error: BaseException | None = None


@dataclass(frozen=True)
class FetchAlerts:
    """Fill an alert gap: page through ``GET rtstream/api/alerts?since=<since>`` (with
    ``symbol`` unless it is ``"*"``) until the end, then hand everything to
    :meth:`~.protocol.ClientProtocol.receive_alert_history` with this request.

    ``generation`` and ``fill`` name the subscription and the fill it was made for, so an
    answer arriving after an unsubscribe/subscribe or a newer gap is not delivered; ``epoch``
    is the server epoch whose store answers (alerts are keyed by ``(epoch, alert_id)``).
    """

    gap: GapEvent
    since: int
    symbol: str | None = None
    generation: int = 0
    fill: int = 0
    epoch: str | None = None


@dataclass(frozen=True)
class ConnectionDead:
    """The current connection missed its deadline (open timeout or heartbeats): drop it now,
    without a closing handshake; the protocol already counts it as ended."""

    connection: int
    why: str


Event: TypeAlias = (
    Delivered | ControlReceived | RequestOutcome | FetchAlerts | ConnectionDead | GapEvent
) | StateChange
