"""The simulated feed's seeded history, applied without holding the server's start.

Every symbol starts warm from ``history_ticks`` past ticks, but a universe of 10,000
symbols has three million of them: applied before the server serves, they held Jupyter's
start for minutes. Instead the server applies at most ``startup_warmup_ticks`` of them
before it serves (a constant), and the rest in the background, symbol after symbol, letting
the event loop go every few milliseconds. A symbol ticks live only once its history is applied
(:meth:`~.feed.SimulatedMarket.go_live`), so the engine always sees history, then live
ticks, as before.

First use jumps the queue: a subscribe or a history request warms that symbol at once
(:meth:`Warmup.warm`, a few ms); a REST snapshot answers ``warming: true`` at once and
moves the symbol to the front (:meth:`Warmup.promote`). The history's *messages* are not
kept (that was most of a symbol's memory): the pipeline draws the same ticks again on first
use (:meth:`Warmup.replay`) and records them in the hub then.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections import deque
from datetime import datetime

from .feed import SimulatedMarket, Tick
from .pipeline import Pipeline

log = logging.getLogger(__name__)

#: From this many symbols on, the objects alive once the warm-up is done are frozen
#: (``gc.freeze``): long-lived state the cyclic collector need not walk again.
FREEZE_SYMBOLS = 1000


class Warmup:
    """Applies each symbol's seeded history once, in order, or sooner on first use."""

    def __init__(
        self,
        pipeline: Pipeline,
        market: SimulatedMarket,
        steps: int,
        interval: float,
        end: datetime,
        *,
        slice_seconds: float = 0.005,
    ) -> None:
        self.pipeline = pipeline
        self.market = market
        self.steps = steps
        self.interval = interval
        self.end = end
        #: Longest run of the background warm-up between two yields to the event loop.
        self.slice_seconds = slice_seconds
        self._pending: set[str] = set(market.symbols)
        #: Order of the background warm-up; promoted symbols are put in front (a symbol
        #: may be listed twice: it is skipped once warm).
        self._order: deque[str] = deque(market.symbols)
        self.applied = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """Symbols still to warm up."""
        return len(self._pending)

    def pending_for(self, symbol: str) -> bool:
        return symbol in self._pending

    def warm(self, symbol: str) -> bool:
        """Apply ``symbol``'s history now if it is still pending; True if it was."""
        if symbol not in self._pending:
            return False
        self._pending.discard(symbol)
        ticks = self.market.symbol_history(symbol, self.steps, self.interval, self.end)
        pipeline = self.pipeline
        for tick in ticks:
            pipeline.on_tick(tick, publish=False)
        self.applied += len(ticks)
        if ticks:
            pipeline.history_applied(symbol)
        self.market.go_live(symbol)
        return True

    def promote(self, symbol: str) -> None:
        """Warm ``symbol`` next (in the background)."""
        if symbol in self._pending:
            self._order.appendleft(symbol)

    def replay(self, symbol: str) -> list[Tick]:
        """The ticks :meth:`warm` applied to ``symbol``, drawn again."""
        return self.market.replay_history(symbol, self.steps, self.interval, self.end)

    def run_for(self, ticks: int) -> int:
        """Warm symbols in order until about ``ticks`` history ticks are applied (at least
        one symbol when any is pending); return how many symbols were warmed."""
        warmed = 0
        budget = self.applied + ticks
        order = self._order
        while order and (warmed == 0 or self.applied < budget):
            warmed += self.warm(order.popleft())
        if not order:
            self._pending.clear()  # every symbol was listed; nothing is left
        return warmed

    def start(self) -> None:
        if self._pending and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        order = self._order
        while order:
            until = time.monotonic() + self.slice_seconds
            try:
                while order and time.monotonic() < until:
                    self.warm(order.popleft())
            except Exception:  # pragma: no cover - a bad symbol must not stop the rest
                log.exception("rtstream: seeded history failed")
            await asyncio.sleep(0)
        log.info("rtstream: seeded history applied (%d ticks)", self.applied)
        if len(self.market.prices) >= FREEZE_SYMBOLS:
            # The analytics state of a large universe lives as long as the server: out of
            # the collector's full passes with it (10,000 symbols: ~0.45 s per full pass,
            # the event loop stopped, about once a minute).
            gc.freeze()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
