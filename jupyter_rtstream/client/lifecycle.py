"""The connection lifecycle of :class:`~.protocol.ClientProtocol` (sans-I/O): attempts,
closes, deadlines, the reconnect schedule and the state the application observes.

Split from :mod:`.protocol` (which handles frames, requests and subscriptions) so that the
"when and how long" of a connection reads in one place. Every failure is classified by
:mod:`jupyter_rtstream.core.backoff` and its delay drawn by the
:class:`~jupyter_rtstream.core.backoff.ReconnectPolicy`:

- refused or reset before the handshake, or an open connection that vanished without a
  close frame (a killed server): quick jittered retries, uniform(0.25, 1.0) s;
- HTTP 502/503/504 without ``Retry-After``: the same for 30 s, then as an overload;
- close 1013/1001/1012/..., ``retry_after``, HTTP 429 and 503 with ``Retry-After``, open and
  heartbeat timeouts: full-jitter exponential backoff, never below ``retry_after``;
- HTTP 400/401/403/404, close 1002/1003/1007/1010: final (``disconnected``).

The overload level falls back to 0 only after a connection stayed up ``stable_after``
seconds after its ``connection_status``, so a server that accepts and closes at once is
not hammered; ``stream.attempts`` (what a person reads) restarts at every connection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..core.backoff import (
    TIMEOUT,
    Failure,
    FailureKind,
    ReconnectPolicy,
    classify_close,
    classify_http,
    status_text,
)
from .errors import AuthenticationError, ConnectionLost, StreamClosed
from .events import ConnectionDead, Event
from .options import StreamOptions
from .requests import RequestTable
from .state import CloseInfo, ConnectionState, StateChange, StreamStats

log = logging.getLogger("jupyter_rtstream.client")

#: The refusals (final, see core.backoff.REFUSED_HTTP) that mean "your credentials are
#: refused": they end the stream with an AuthenticationError.
AUTH_REFUSED_HTTP = frozenset({401, 403})
#: The ``last_close`` of a connection replaced because it went silent.
HEARTBEAT_TIMEOUT = "heartbeat timeout"


@dataclass
class Link:
    """One connection attempt and what its ``connection_status`` told us."""

    id: int
    opened_at: float
    last_received: float
    statuses: int = 0
    #: ``now`` of the first connection_status; stable once up ``stable_after`` from there.
    connected_at: float | None = None
    stable: bool = False
    #: Why the protocol condemned this connection (it is dropped at the next check).
    broken: str | None = None
    epoch: str | None = None
    heartbeat_interval: float | None = None


class ConnectionLifecycle:
    """Connections of one stream, one after the other, and the waits between them."""

    def __init__(self, options: StreamOptions | None = None) -> None:
        self.options = o = options or StreamOptions()
        self.stats = StreamStats()
        self.policy = ReconnectPolicy(o.backoff_base, o.backoff_cap, o.backoff_factor, o.rng)
        #: What a person should read about the connection (see ``StateChange.status_text``).
        self.status_text = "connecting"
        #: The classified failure behind the current wait (None while connected).
        self.last_failure: Failure | None = None
        self.requests = RequestTable()
        self.state = ConnectionState.CONNECTING
        #: Why the last connection or attempt ended (or the final error).
        self.last_error: BaseException | None = None
        #: The last close the server sent, or a heartbeat timeout; failed attempts keep it.
        self.last_close: CloseInfo | None = None
        self.next_retry_at: datetime | None = None
        #: Wait before the next attempt (None: no attempt is scheduled).
        self.retry_delay: float | None = None
        #: Monotonic time of the next attempt (meaningful while ``retry_delay`` is set).
        self.retry_at: float | None = None
        self.epoch: str | None = None
        self.client_id: str | None = None
        self.heartbeat_interval: float | None = None
        self.conflated = 0
        #: close() was called or a final error happened: never reconnect again.
        self.closing = False
        self.final_error: BaseException | None = None
        self.link: Link | None = None
        self._link_ids = 0
        self._connected_once = False
        self._events: list[Event] = []
        self._outgoing: list[str] = []

    # ------------------------------------------------------------------ outputs

    def events_received(self) -> list[Event]:
        """Decisions taken since the last call, in order (see :mod:`.events`)."""
        events, self._events = self._events, []
        return events

    def data_to_send(self) -> list[str]:
        """Texts to write, in order, on the live connection."""
        texts, self._outgoing = self._outgoing, []
        return texts

    def deadline(self) -> float | None:
        """When :meth:`check_timeouts` must run next (None: nothing to watch)."""
        link = self.link
        if link is None:
            return None
        if link.broken is not None:
            return link.last_received  # due now
        if link.statuses == 0:
            return link.opened_at + self.options.open_timeout
        interval = self._interval(link)
        if interval <= 0:  # the server sends no heartbeats: only closes tell
            return None
        return link.last_received + self.options.missed_heartbeats * interval

    @property
    def live(self) -> bool:
        """A connection is open and its ``connection_status`` arrived: requests can go."""
        return self.link is not None and self.link.statuses > 0

    @property
    def finished(self) -> bool:
        return self.state is ConnectionState.DISCONNECTED

    def raise_if_final(self) -> None:
        if self.final_error is not None:
            raise self.final_error
        if self.closing:
            raise StreamClosed("the stream is closed")

    # ------------------------------------------------------------------ connection inputs

    def begin_attempt(self, now: float) -> int:
        """A connection attempt starts (its open timeout runs from ``now``); returns its id."""
        self._end_link(None)
        self._link_ids += 1
        self.link = Link(self._link_ids, now, now)
        self.stats.connection_attempts += 1
        self.retry_delay = self.retry_at = None
        self.next_retry_at = None
        return self._link_ids

    def connection_failed(
        self,
        description: str,
        now: float,
        wall: datetime,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
        timeout: bool = False,
    ) -> None:
        """The attempt never opened: refused or reset (the default), a ``timeout`` (or any
        other sign that a server answered, badly), or the upgrade answered ``http_status``
        (with a clamped ``Retry-After``: ``retry_after``)."""
        self._end_link(None)
        if http_status is not None:
            failure = classify_http(http_status, retry_after)
        else:
            failure = TIMEOUT if timeout else Failure(FailureKind.UNREACHABLE, None, "refused")
        if failure.kind is FailureKind.REFUSED:
            self.last_failure = failure
            if http_status in AUTH_REFUSED_HTTP:
                self.finish(AuthenticationError(description, http_status or 0))
            else:
                self.finish(StreamClosed(description))
            return
        self.last_error = ConnectionLost(description)
        self._schedule_retry(failure, now, wall)

    def connection_closed(
        self, code: int | None, reason: str | None, now: float, wall: datetime
    ) -> CloseInfo:
        """The open connection ended: a close frame (``code``), or the socket just died."""
        close = CloseInfo.parse(code, reason)
        link = self.link
        if link is None:
            return close
        if not self.closing:  # our own close() is no news
            self.last_error = ConnectionLost(str(close))
            if code is not None:
                self.last_close = close
        self._check_stable(link, now)
        self._end_link(None)
        failure = classify_close(code, close.retry_after)
        if failure.kind is FailureKind.REFUSED and not self.closing:
            self.last_failure = failure
            self.finish(StreamClosed(f"the server refused the connection: {close}"))
            return close
        self._schedule_retry(failure, now, wall)
        return close

    def check_timeouts(self, now: float, wall: datetime) -> None:
        """Declare the connection dead when its deadline passed (emits :class:`ConnectionDead`)."""
        link, deadline = self.link, self.deadline()
        if link is None or deadline is None or now < deadline:
            return
        if link.broken is not None:
            why, detail = link.broken, "bad frame"
            self.last_error = ConnectionLost(f"dropped the connection: {why}")
        else:
            if link.statuses == 0:
                why = f"no connection_status within {self.options.open_timeout:g}s"
                detail = "timeout"
            else:
                why = f"no message for {self.options.missed_heartbeats:g} heartbeat intervals"
                detail = HEARTBEAT_TIMEOUT
                self.last_close = CloseInfo(None, HEARTBEAT_TIMEOUT)
            self.last_error = ConnectionLost(
                f"dead connection: {why} ({now - link.last_received:.1f}s)"
            )
        log.warning("rtstream: %s; replacing it", self.last_error)
        self._events.append(ConnectionDead(link.id, why))
        self._check_stable(link, now)
        self._end_link(None)
        self._schedule_retry(Failure(FailureKind.OVERLOAD, None, detail), now, wall)

    def close(self) -> None:
        """The application closes the stream: no reconnection, closes are expected now."""
        self.closing = True
        self.retry_delay = self.retry_at = None

    def finish(self, error: BaseException | None) -> None:
        """Enter the final ``disconnected`` state; every open request fails."""
        if self.finished:
            return
        if error is not None:
            self.final_error = self.last_error = error
        self.closing = True
        self.retry_delay = self.retry_at = None
        self.next_retry_at = None
        failure = error or StreamClosed("the stream is closed")
        self._end_link(failure)
        self._events.extend(self.requests.fail_all(failure))
        self._set_state(ConnectionState.DISCONNECTED)
        if error is not None:
            level = logging.DEBUG if type(error) is StreamClosed else logging.ERROR
            log.log(level, "rtstream: stream stopped: %s", error)

    # ------------------------------------------------------------------ internals

    def _interval(self, link: Link) -> float:
        interval = link.heartbeat_interval
        return self.options.heartbeat_interval if interval is None else interval

    def _end_link(self, error: BaseException | None) -> None:
        link, self.link = self.link, None
        self._outgoing.clear()
        if link is not None:
            self._events.extend(self.requests.connection_ended(link.id, error))

    def _check_stable(self, link: Link, now: float) -> None:
        """A connection up ``stable_after`` seconds since its connection_status proves the
        server copes: only then does the overload backoff de-escalate."""
        if link.stable or link.connected_at is None:
            return
        if now - link.connected_at >= self.options.stable_after:
            link.stable = True
            self.policy.stable()

    def _schedule_retry(self, failure: Failure, now: float, wall: datetime) -> None:
        if self.closing or self.final_error is not None:
            return
        delay = self.policy.next_delay(failure, now)
        self.last_failure = failure
        self.retry_delay = delay
        self.retry_at = now + delay
        self.next_retry_at = wall + timedelta(seconds=delay)
        self.status_text = status_text(failure, delay)
        self._set_state(ConnectionState.RECONNECTING, notify_always=True)
        log.info(
            "rtstream: %s; %s (%.2fs, attempt %d, %s)",
            self.last_error,
            self.status_text,
            delay,
            self.policy.attempts,
            failure.kind,
        )

    def _set_state(self, state: ConnectionState, *, notify_always: bool = False) -> None:
        previous = self.state
        if previous is state and not notify_always:
            return
        self.state = state
        if state is ConnectionState.DISCONNECTED:
            self.status_text = self._final_text()
        change = StateChange(
            state,
            previous,
            self.policy.attempts,
            self.last_error,
            self.next_retry_at,
            self.status_text,
        )
        self._events.append(change)

    def _final_text(self) -> str:
        error = self.final_error
        if self.last_failure is not None and self.last_failure.kind is FailureKind.REFUSED:
            return status_text(self.last_failure, None)
        if error is None or type(error) is StreamClosed:
            return "closed"
        return f"stopped: {type(error).__name__}"
