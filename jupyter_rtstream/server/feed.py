"""Tick sources: the seeded simulated market (default) and the asyncio task that runs one."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from ..core.messages import utc_now

DEFAULT_SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")
_START_PRICES = {"AAPL": 190.0, "MSFT": 420.0, "GOOG": 170.0, "AMZN": 180.0, "NVDA": 120.0}


@dataclass(frozen=True, slots=True)
class Tick:
    symbol: str
    price: float
    volume: float
    timestamp: datetime


class SimulatedMarket:
    """Geometric Brownian motion per symbol, reproducible from ``seed``.

    ``volatility`` is per square-root second, so the path looks the same whatever the tick
    rate: each step multiplies the price by ``exp((mu - sigma²/2) dt + sigma √dt Z)``.
    """

    def __init__(
        self,
        symbols: tuple[str, ...] | list[str] = DEFAULT_SYMBOLS,
        *,
        seed: int | None = None,
        volatility: float = 0.002,
        drift: float = 0.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.volatility = volatility
        self.drift = drift
        self.prices = {s: _START_PRICES.get(s, 50.0 + 150.0 * self.rng.random()) for s in symbols}

    @property
    def symbols(self) -> list[str]:
        return list(self.prices)

    def step(self, timestamp: datetime, dt: float) -> list[Tick]:
        """One tick per symbol, ``dt`` seconds after the previous one."""
        ticks = []
        sigma, gauss, randint = self.volatility, self.rng.gauss, self.rng.randint
        for symbol, price in self.prices.items():
            shock = (self.drift - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * gauss(0, 1)
            price = round(price * math.exp(shock), 4)
            self.prices[symbol] = price
            ticks.append(Tick(symbol, price, float(randint(1, 50) * 100), timestamp))
        return ticks

    def history(self, steps: int, interval: float, end: datetime) -> Iterator[list[Tick]]:
        """``steps`` past rounds of ticks ending at ``end`` (to start instruments warm)."""
        for i in range(steps, 0, -1):
            yield self.step(end - timedelta(seconds=i * interval), interval)


class BackgroundSource(ABC):
    """A tick source that runs as one asyncio task; ``start``/``stop`` are idempotent.

    The server keeps a strong reference to the task (here) so it is not garbage collected
    mid-run, and ``stop`` waits for the cancellation to finish before the server goes on.
    """

    _task: asyncio.Task[None] | None = None
    ticks: int = 0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Cancel and wait; a task that had already died is logged, never re-raised (the
        server's shutdown must go on to close clients and the store)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logging.getLogger(__name__).exception("rtstream: tick source had failed")

    @abstractmethod
    async def _run(self) -> None:
        """Produce ticks until cancelled (or the source is exhausted)."""


class FeedRunner(BackgroundSource):
    """Runs a :class:`SimulatedMarket` at ``rate`` rounds per second on the event loop."""

    def __init__(
        self,
        market: SimulatedMarket,
        rate: float,
        on_tick: Callable[[Tick], None],
        log: logging.Logger | None = None,
    ) -> None:
        self.market = market
        self.rate = rate
        self.on_tick = on_tick
        self.log = log or logging.getLogger(__name__)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        deadline = loop.time()
        while True:
            deadline += interval
            for tick in self.market.step(utc_now(), interval):
                try:
                    self.on_tick(tick)
                except Exception:  # one bad tick must not stop the feed
                    self.log.exception("rtstream: failed to process tick %s", tick)
                self.ticks += 1
            delay = deadline - loop.time()
            if delay < -1.0:  # fell far behind (suspended laptop): do not burst to catch up
                deadline = loop.time()
            await asyncio.sleep(max(0.0, delay))
