"""Background trims that bound memory and disk while nothing else happens.

Run every ``housekeeping_interval`` seconds by the app:

- replay buffers are trimmed by age (the publish path trims only the topic it publishes
  to, so a topic that went quiet after a burst would keep the burst forever);
- a symbol with no tick for ``symbol_ttl`` and no subscriber releases its topics' replay
  buffers and snapshots (it stays known: rules name it, its ``seq`` goes on);
- the alert history is pruned to ``alert_retention_days`` and ``alert_max_rows``, on the
  store thread, never blocking the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..core.hub import Hub
from ..core.vocabulary import SUBSCRIPTION_TYPES, topic_for
from .pipeline import Pipeline
from .store_worker import StoreWorker

log = logging.getLogger(__name__)


class Housekeeping:
    """One ``run()`` per timer tick; the history prune runs as a background task."""

    def __init__(
        self,
        hub: Hub,
        pipeline: Pipeline,
        worker: StoreWorker | None,
        *,
        retention_seconds: float,
        max_rows: int,
    ) -> None:
        self.hub = hub
        self.pipeline = pipeline
        self.worker = worker
        self.retention_seconds = retention_seconds
        self.max_rows = max_rows
        self.released = 0
        self.trimmed = 0
        self.pruned = 0
        self._prune: asyncio.Task[None] | None = None

    def run(self) -> None:
        self.trimmed += self.hub.trim()
        for symbol in self.pipeline.idle_symbols():
            for kind in SUBSCRIPTION_TYPES:
                self.released += self.hub.release(topic_for(kind, symbol))
        if self.worker is not None and (self._prune is None or self._prune.done()):
            self._prune = asyncio.get_running_loop().create_task(self.prune())

    async def prune(self) -> None:
        """Delete alerts past retention or the row cap (failures are logged, retried on
        the next run)."""
        if self.worker is None:
            return
        try:
            self.pruned += await self.worker.call(
                self.worker.store.prune_alerts,
                older_than=time.time() - self.retention_seconds,
                keep_rows=self.max_rows,
            )
        except Exception as exc:
            log.warning("rtstream: pruning the alert history failed (%s); will retry", exc)

    def cancel(self) -> None:
        if self._prune is not None:
            self._prune.cancel()
