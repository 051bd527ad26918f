"""SQLite off the event loop: every store call runs on one ordered thread.

A database locked by another process blocks a write for up to ``busy_timeout`` seconds;
on the event loop that would freeze every WebSocket of the server. Here the loop only
awaits a future: market data keeps flowing while the write waits. One thread (not a pool)
keeps calls in submission order, so an alert committed first is published first, and the
single SQLite connection is never used by two threads at once.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from .store import AlertStore

_T = TypeVar("_T")


class StoreWorker:
    """Runs :class:`~.store.AlertStore` methods on one dedicated thread, in order."""

    def __init__(self, store: AlertStore) -> None:
        self.store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rtstream-store")
        self._closed = False

    async def call(self, fn: Callable[..., _T], /, *args: object, **kwargs: object) -> _T:
        """``await worker.call(store.method, ...)``: the result, or the store's exception."""
        if self._closed:
            raise RuntimeError("the alert store is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        """Finish what is queued, then close the database on its own thread."""
        if self._closed:
            return
        self._closed = True
        self._executor.submit(self.store.close)
        self._executor.shutdown(wait=True)
