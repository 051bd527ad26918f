"""One client connection's protocol state machine (sans-I/O).

The WebSocket handler feeds it what arrives (:meth:`ServerSession.receive_text`,
:meth:`~ServerSession.receive_binary`, :meth:`~ServerSession.heartbeat`), writes what
:meth:`~ServerSession.frames_to_send` returns and closes when
:meth:`~ServerSession.close_request` says so; the session decides every answer: ``ack``,
``error``, ``connection_status``, replay, and when the connection must close and with
which code. The handler never touches the outbox or the hub itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .codec import decode_client, encode, request_id_of
from .errors import CloseCode, CloseConnection, ErrorCode, ProtocolError, close_reason
from .hub import Hub
from .instruments import InstrumentRegistry
from .messages import (
    PROTOCOL_VERSIONS,
    Ack,
    AckPayload,
    ConnectionStatus,
    ConnectionStatusPayload,
    Error,
    ErrorPayload,
    Ping,
    Subscribe,
    Unsubscribe,
    utc_now,
)
from .outbox import Frame, Outbox
from .ratelimit import TokenBucket
from .vocabulary import Action, topic_for


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds (the server's traitlets fill these in)."""

    max_message_size: int = 64 * 1024
    max_subscriptions: int = 100
    rate_limit: float = 50.0
    rate_burst: int = 100
    #: Frames over budget (net of frames accepted since) before a 1008 close.
    flood_tolerance: int = 100


class ServerSession:
    """Protocol state of one connected client (slotted: one exists per connection)."""

    __slots__ = (
        "alert_store_id",
        "bucket",
        "client_id",
        "connected_at",
        "heartbeat_interval",
        "hub",
        "instruments",
        "last_alert_id",
        "limits",
        "outbox",
        "over_budget",
        "received",
        "rejected",
        "server_version",
    )

    def __init__(
        self,
        hub: Hub,
        instruments: InstrumentRegistry,
        client_id: str,
        *,
        limits: Limits | None = None,
        waker: Callable[[], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_interval: float | None = None,
        server_version: str | None = None,
        last_alert_id: Callable[[], int | None] | None = None,
        alert_store_id: str | None = None,
    ) -> None:
        self.hub = hub
        self.instruments = instruments
        self.client_id = client_id
        self.limits = limits or Limits()
        self.outbox: Outbox = hub.connect(client_id, waker)
        self.bucket = TokenBucket(self.limits.rate_limit, self.limits.rate_burst, clock)
        self.over_budget = 0
        self.connected_at: datetime = utc_now()
        self.heartbeat_interval = heartbeat_interval
        self.server_version = server_version
        #: Asks the alert history for its newest published id (injected, so the session
        #: stays pure); it fills ``last_alert_id`` in the ack of an alert topic.
        self.last_alert_id = last_alert_id
        #: The identity of that alert history (ids are comparable only within one store).
        self.alert_store_id = alert_store_id
        self.received = 0
        self.rejected = 0

    # ------------------------------------------------------------------ inputs

    def opened(self) -> None:
        """Greet the client with its ``connection_status`` (client id, epoch, versions)."""
        self.heartbeat()

    def heartbeat(self) -> None:
        self.outbox.push_text(encode(self.status()))

    def receive_text(self, text: str) -> None:
        """Handle one client text frame; every outcome lands in the outbox."""
        self.received += 1
        if self.outbox.close_request is not None:
            return
        try:
            self._receive(text)
        except CloseConnection as exc:
            self._refuse(exc)
            self.outbox.request_close(exc.close_code, exc.reason)
        except ProtocolError as exc:
            self._refuse(exc)
        except Exception as exc:  # a bug must not kill the connection or the server
            self._refuse(
                ProtocolError(
                    ErrorCode.INTERNAL_ERROR,
                    f"internal error: {type(exc).__name__}",
                    request_id_of(text),
                )
            )

    def resume_of(self, text: str) -> tuple[str, int, str | None] | None:
        """``(topic, resume_from, epoch)`` if ``text`` is a valid resuming subscribe, else
        None; no side effect (the shell may fill the replay buffer before it is handled)."""
        request = decode_client(text)
        if not isinstance(request, Subscribe) or request.resume_from is None:
            return None
        try:
            topic = self._topic(request)
        except ProtocolError:
            return None
        return topic, request.resume_from, request.epoch

    def receive_binary(self) -> None:
        self.outbox.request_close(CloseCode.UNSUPPORTED_DATA, close_reason("BINARY_FRAME"))

    def close(self, code: int, reason: str) -> None:
        """Server-initiated close (shutdown): what is queued is still sent first."""
        self.outbox.request_close(code, reason)

    def closed(self) -> None:
        self.hub.disconnect(self.client_id)

    # ------------------------------------------------------------------ outputs

    def data_to_send(self) -> list[str]:
        """Every queued frame's text, in order; the outbox is empty afterwards."""
        return self.outbox.drain()

    def frames_to_send(self) -> list[Frame]:
        """Like :meth:`data_to_send`, as the shared :class:`Frame` objects (their wire bytes
        are built once and shared by every client the frame is fanned out to)."""
        return self.outbox.drain_frames()

    def summary(self) -> dict[str, Any]:
        """The session's own figures for the status API (the hub reports its queue)."""
        return {
            "client_id": self.client_id,
            "connected_at": self.connected_at,
            "received": self.received,
            "rejected": self.rejected,
        }

    @property
    def close_request(self) -> tuple[int, str] | None:
        """``(code, reason)`` of the close the shell is asked to make, if any."""
        return self.outbox.close_request

    def status(self) -> ConnectionStatus:
        now = utc_now()
        return ConnectionStatus(
            timestamp=now,
            data=ConnectionStatusPayload(
                client_id=self.client_id,
                connected_at=self.connected_at,
                subscriptions=sorted(self.outbox.subscriptions),
                last_heartbeat=now,
                epoch=self.hub.epoch,
                protocol_versions=list(PROTOCOL_VERSIONS),
                heartbeat_interval=self.heartbeat_interval,
                conflated=self.outbox.conflated,
                server_version=self.server_version,
                feed_state=self.hub.feed_state,
            ),
        )

    # ------------------------------------------------------------------ internals

    def _receive(self, text: str) -> None:
        limit = self.limits.max_message_size
        if len(text) > limit // 4 and len(text.encode("utf-8", "surrogatepass")) > limit:
            raise CloseConnection(
                ErrorCode.MESSAGE_TOO_LARGE,
                f"frame exceeds {limit} bytes",
                CloseCode.MESSAGE_TOO_BIG,
            )
        if not self.bucket.take():
            self.over_budget += 1
            retry_after = max(1.0, self.limits.rate_burst / max(self.limits.rate_limit, 1e-9))
            if self.over_budget > self.limits.flood_tolerance:
                raise CloseConnection(
                    ErrorCode.RATE_LIMITED,
                    "sustained flooding over the rate limit",
                    CloseCode.POLICY_VIOLATION,
                    retry_after=retry_after,
                    request_id=request_id_of(text),
                )
            raise ProtocolError(
                ErrorCode.RATE_LIMITED,
                f"over {self.limits.rate_limit:g} messages/s; slow down",
                request_id_of(text),
            )
        self.over_budget = max(0, self.over_budget - 1)
        request = decode_client(text)
        if isinstance(request, ProtocolError):
            raise request
        try:
            if isinstance(request, Subscribe):
                self._subscribe(request)
            elif isinstance(request, Unsubscribe):
                self._unsubscribe(request)
            else:
                self._ping(request)
        except ProtocolError as exc:
            exc.request_id = exc.request_id or request.request_id
            raise

    def _topic(self, request: Subscribe | Unsubscribe) -> str:
        symbol = self.instruments.resolve(
            request.symbol,
            request.instrument_id,
            allow_all=request.subscription_type == "alerts",
        )
        return topic_for(request.subscription_type, symbol)

    def _subscribe(self, request: Subscribe) -> None:
        topic = self._topic(request)
        subs = self.outbox.subscriptions
        if topic in subs:
            # Already streaming: a second subscribe (even with resume_from) must not replay
            # frames that are queued or delivered already.
            self._ack(request.request_id, "subscribe", topic, None)
            return
        if len(subs) >= self.limits.max_subscriptions:
            raise ProtocolError(
                ErrorCode.SUBSCRIPTION_LIMIT,
                f"at most {self.limits.max_subscriptions} subscriptions per connection",
            )
        result = self.hub.subscribe(
            self.client_id, topic, resume_from=request.resume_from, epoch=request.epoch
        )
        alert_id = store_id = None
        if request.subscription_type == "alerts" and self.last_alert_id is not None:
            alert_id, store_id = self.last_alert_id(), self.alert_store_id
        self._ack(
            request.request_id,
            "subscribe",
            topic,
            result.recovered,
            seq=result.seq,
            last_alert_id=alert_id,
            store_id=store_id,
        )
        for frame in result.frames:
            self.outbox.push(frame)

    def _unsubscribe(self, request: Unsubscribe) -> None:
        topic = self._topic(request)
        self.hub.unsubscribe(self.client_id, topic)
        self._ack(request.request_id, "unsubscribe", topic, None)

    def _ping(self, request: Ping) -> None:
        self._ack(request.request_id, "ping", None, None)

    def _ack(
        self,
        request_id: str | None,
        action: Action,
        topic: str | None,
        recovered: bool | None,
        *,
        seq: int | None = None,
        last_alert_id: int | None = None,
        store_id: str | None = None,
    ) -> None:
        ack = Ack(
            data=AckPayload(
                request_id=request_id,
                action=action,
                topic=topic,
                subscriptions=sorted(self.outbox.subscriptions),
                recovered=recovered,
                seq=seq,
                last_alert_id=last_alert_id,
                store_id=store_id,
            )
        )
        self.outbox.push_text(encode(ack))

    def _refuse(self, exc: ProtocolError) -> None:
        self.rejected += 1
        error = Error(
            data=ErrorPayload(
                error_code=exc.code, error_message=exc.message, request_id=exc.request_id
            )
        )
        self.outbox.push_text(encode(error))
