"""Coalesced flushing: every woken connection is written once per event-loop iteration.

Waking a task (or resolving an Event) per client per message costs more than the write
itself at high fan-out; one ``call_soon`` per loop iteration for all woken connections
costs one callback, and each connection writes everything it accumulated in one syscall.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

log = logging.getLogger(__name__)


class Flushable(Protocol):
    """A connection that writes everything it has pending when asked."""

    def write_pending(self) -> None: ...


class Flusher:
    """Collects woken connections and flushes them together on the next loop iteration.

    One per server (not module-global): a pending callback belongs to one event loop.
    """

    def __init__(self) -> None:
        self._dirty: list[Flushable] = []

    def wake(self, connection: Flushable) -> None:
        if not self._dirty:
            asyncio.get_running_loop().call_soon(self._run)
        self._dirty.append(connection)

    def _run(self) -> None:
        dirty, self._dirty = self._dirty, []
        for connection in dirty:
            try:
                connection.write_pending()
            except Exception:  # one broken connection must not strand the others
                log.exception("rtstream: flush failed")
