"""The client's request/ack table: which answer belongs to which request (sans-I/O).

Two kinds of handles, kept apart on purpose:

- a **request id** names one frame on one connection (``s12``, ``u13``, ``p14``); the server
  echoes it in its ``ack`` or ``error``. Requests die with their connection.
- a **ticket** names one application call (``await stream.subscribe(...)``). A subscribe
  ticket waits for its *topic* to be acknowledged, whatever connection carries it, so a
  subscribe made while reconnecting is answered by the renewed connection's ack. Unsubscribe
  and ping tickets are bound to the request id they were sent with.

Every ticket gets exactly one :class:`~.events.RequestOutcome` (or is forgotten by the
caller, e.g. after its own timeout); :class:`RequestTable` enforces that.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from ..core.messages import Ack
from ..core.vocabulary import Action
from .errors import NotConnectedError
from .events import RequestOutcome


@dataclass(frozen=True)
class SentRequest:
    """One request frame in flight."""

    action: Action
    topic: str | None
    connection: int
    ticket: int | None = None


class RequestTable:
    """Request ids in flight, tickets waiting for an outcome, subscribe tickets per topic."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._tickets = itertools.count(1)
        self.sent: dict[str, SentRequest] = {}
        #: ticket -> (action, topic) of every application call still waiting.
        self.open: dict[int, tuple[Action, str | None]] = {}
        #: subscribe tickets waiting for their topic's next ack (or refusal).
        self.topic_waiters: dict[str, list[int]] = {}

    def new_ticket(self, action: Action, topic: str | None) -> int:
        ticket = next(self._tickets)
        self.open[ticket] = (action, topic)
        if action == "subscribe" and topic is not None:
            self.topic_waiters.setdefault(topic, []).append(ticket)
        return ticket

    def send(
        self, action: Action, topic: str | None, connection: int, ticket: int | None = None
    ) -> str:
        """Register a request frame about to be sent; returns its request id."""
        request_id = f"{action[:1]}{next(self._ids)}"
        self.sent[request_id] = SentRequest(action, topic, connection, ticket)
        return request_id

    def answered(self, request_id: str | None) -> SentRequest | None:
        """The request an ``ack``/``error`` answers (removed from the table), if any."""
        return self.sent.pop(request_id, None) if request_id is not None else None

    def resolve(
        self, ticket: int, *, ack: Ack | None = None, error: BaseException | None = None
    ) -> RequestOutcome | None:
        """The ticket's outcome, once: None when it was answered or forgotten already."""
        entry = self.open.pop(ticket, None)
        if entry is None:
            return None
        action, topic = entry
        if topic is not None and topic in self.topic_waiters:
            waiting = self.topic_waiters[topic]
            if ticket in waiting:
                waiting.remove(ticket)
            if not waiting:
                del self.topic_waiters[topic]
        return RequestOutcome(ticket, action, topic, ack, error)

    def resolve_topic(
        self, topic: str, *, ack: Ack | None = None, error: BaseException | None = None
    ) -> list[RequestOutcome]:
        """Answer every subscribe ticket waiting for ``topic``."""
        outcomes = []
        for ticket in list(self.topic_waiters.get(topic, ())):
            outcome = self.resolve(ticket, ack=ack, error=error)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def forget(self, ticket: int) -> None:
        """The caller stopped waiting (its timeout): no outcome will be produced."""
        self.resolve(ticket)

    def connection_ended(
        self, connection: int, error: BaseException | None = None
    ) -> list[RequestOutcome]:
        """Drop the requests of a finished connection; fail the tickets bound to them (with
        ``error``, by default :class:`~.errors.NotConnectedError`).

        Subscribe tickets are bound to their topic, not to the connection: they stay.
        """
        outcomes = []
        for request_id, sent in list(self.sent.items()):
            if sent.connection != connection:
                continue
            del self.sent[request_id]
            if sent.ticket is not None and sent.action != "subscribe":
                failure = error or NotConnectedError(
                    f"connection lost before the {sent.action} ack"
                )
                outcome = self.resolve(sent.ticket, error=failure)
                if outcome is not None:
                    outcomes.append(outcome)
        return outcomes

    def fail_all(self, error: BaseException) -> list[RequestOutcome]:
        """The stream stopped: every open ticket fails with ``error``."""
        self.sent.clear()
        outcomes = [self.resolve(ticket, error=error) for ticket in list(self.open)]
        return [outcome for outcome in outcomes if outcome is not None]
