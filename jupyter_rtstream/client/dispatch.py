"""The application side of a stream: callbacks per event, the ``async for`` queue.

:mod:`.stream` hands it what the protocol delivered; callbacks never see each other's
exceptions (they are logged and counted) and coroutine callbacks run as tasks that the
dispatcher keeps strong references to until they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeAlias

from ..core.messages import SERVER_MESSAGE_TYPES
from .state import StreamStats

log = logging.getLogger("jupyter_rtstream.client")

Callback: TypeAlias = Callable[[Any], Any]

#: Events ``Stream.on`` accepts: every server message type, ``"*"`` (any server message),
#: ``"gap"`` (:class:`~.state.GapEvent`) and ``"state"`` (:class:`~.state.StateChange`).
EVENTS = frozenset({*SERVER_MESSAGE_TYPES, "*", "gap", "state"})


@dataclass
class _Handler:
    callback: Callback
    topic: str | None


class Dispatcher:
    """Registered callbacks, the bounded iteration queue and the tasks they started."""

    def __init__(self, stats: StreamStats, queue_size: int) -> None:
        self.stats = stats
        self.queue_size = queue_size
        self.queue: deque[Any] = deque()
        self.queued = asyncio.Event()
        self.tasks: set[asyncio.Task[Any]] = set()
        self._handlers: dict[str, list[_Handler]] = {}

    def on(self, event: str, callback: Callback, topic: str | None) -> Callable[[], None]:
        if event not in EVENTS:
            raise ValueError(f"unknown event {event!r}; expected one of {sorted(EVENTS)}")
        handler = _Handler(callback, topic)
        self._handlers.setdefault(event, []).append(handler)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.get(event, []).remove(handler)

        return remove

    def emit(self, event: str, item: Any, topic: str | None) -> None:
        for handler in list(self._handlers.get(event, ())):
            if handler.topic is not None and handler.topic != topic:
                continue
            try:
                result = handler.callback(item)
                if inspect.isawaitable(result):
                    self.spawn(self._await_callback(result))
            except Exception:
                self.stats.callback_errors += 1
                log.exception("rtstream: %s callback failed", event)

    def deliver(self, message: Any, topic: str | None, *, queue: bool) -> None:
        """A server message: its type's callbacks, the ``"*"`` ones, then the queue."""
        self.emit(message.message_type, message, topic)
        self.emit("*", message, topic)
        if queue:
            self.enqueue(message)

    def enqueue(self, message: Any) -> None:
        if self.queue_size <= 0:
            return
        if len(self.queue) >= self.queue_size:
            self.queue.popleft()
            self.stats.queue_overflow += 1
        self.queue.append(message)
        self.queued.set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel_tasks(self) -> None:
        for task in list(self.tasks):
            task.cancel()

    async def _await_callback(self, awaitable: Awaitable[Any]) -> None:
        try:
            await awaitable
        except Exception:
            self.stats.callback_errors += 1
            log.exception("rtstream: async callback failed")
