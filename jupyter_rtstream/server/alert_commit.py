"""Fired alerts: committed to SQLite (off the event loop), then published, in order.

Every alert a client can see must already be in ``GET rtstream/api/alerts``, so an alert
is published only after its commit. Commits run on the :class:`~.store_worker.StoreWorker`
thread, in batches (an alert storm of 1,000 alerts is ten transactions, not 1,000
fsyncs), and one task at a time drains the queue, so alerts go out in the order they fired.
While the database is locked or failing, alerts wait here (bounded: past
``max_pending`` the oldest waiting one is dropped, counted and logged) and the task retries
with a growing delay; market data never waits for them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import deque
from collections.abc import Iterable

from ..analytics import FiredAlert
from ..core.hub import Hub
from ..core.messages import ALL_SYMBOLS, Alert, AlertPayload, topic_for
from .store_worker import StoreWorker

log = logging.getLogger(__name__)

ALL_ALERTS_TOPIC = topic_for("alerts", ALL_SYMBOLS)

#: Alerts committed (and then published) per transaction: small enough that between two
#: batches the event loop flushes the outboxes, so a storm drains as it is published.
BATCH = 100


class AlertCommitter:
    """Commits fired alerts on the store thread and publishes each once it is stored."""

    def __init__(
        self,
        hub: Hub,
        worker: StoreWorker | None,
        *,
        last_alert_id: int = 0,
        max_pending: int = 10_000,
        retry_delay: float = 0.25,
        max_retry_delay: float = 5.0,
    ) -> None:
        self.hub = hub
        self.worker = worker
        #: Newest *published* alert id: the ``last_alert_id`` of an alert topic's ``ack``
        #: (every alert published after the ack has a greater id).
        self.last_alert_id = last_alert_id
        self.published = 0
        self.dropped = 0
        self.failures = 0
        self.max_pending = max_pending
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._waiting: deque[FiredAlert] = deque()
        self._in_flight = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Alerts fired but not yet published (waiting or being committed)."""
        return len(self._waiting) + self._in_flight

    def submit(self, fired: Iterable[FiredAlert]) -> None:
        """Queue alerts in firing order; they are published once committed."""
        for alert in fired:
            if len(self._waiting) >= self.max_pending:
                self._waiting.popleft()
                self.dropped += 1
                log.error("rtstream: alert store unavailable; dropped the oldest waiting alert")
            self._waiting.append(alert)
        if not self._waiting:
            return
        if self.worker is None:  # no store (tests, benchmarks): ids assigned in memory
            batch = list(self._waiting)
            self._waiting.clear()
            first = self.last_alert_id + 1
            self._publish(batch, list(range(first, first + len(batch))))
            return
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self.worker is not None
        delay = self.retry_delay
        while self._waiting:
            batch = [self._waiting.popleft() for _ in range(min(BATCH, len(self._waiting)))]
            self._in_flight = len(batch)
            try:
                ids = await self.worker.call(self.worker.store.record_alerts, batch)
            except Exception as exc:
                self._waiting.extendleft(reversed(batch))  # in order, at the front again
                self._in_flight = 0
                self.failures += 1
                log.warning(
                    "rtstream: could not store %d alert(s) (%s); retrying in %.2fs",
                    len(batch),
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(self.max_retry_delay, delay * 2)
                continue
            self._in_flight = 0
            delay = self.retry_delay
            self._publish(batch, ids)

    def _publish(self, batch: list[FiredAlert], ids: list[int]) -> None:
        for fired, alert_id in zip(batch, ids, strict=True):
            # A FiredAlert is the alert payload minus the id that storage assigns.
            payload = AlertPayload(alert_id=alert_id, **dataclasses.asdict(fired))
            self.last_alert_id = alert_id
            self.published += 1
            self.hub.publish(
                Alert(topic=topic_for("alerts", fired.symbol), data=payload),
                also=(ALL_ALERTS_TOPIC,),
            )

    async def flush(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) until every submitted alert is published."""
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except asyncio.TimeoutError:  # not the builtin on Python 3.10
                log.warning("rtstream: %d alert(s) not stored at shutdown", self.pending)

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
