"""Tick sources: the seeded simulated market (default) and the asyncio task that runs one."""

from __future__ import annotations

import asyncio
import logging
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
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

    Each symbol's seeded history draws from a generator of its own (seeded from ``seed``
    and the symbol, made for the occasion), so it is the same whenever and in whichever
    order the symbols are warmed up, and it can be drawn again later
    (:meth:`replay_history`) instead of being kept. Live ticks share one generator (a
    generator per symbol would cost 2.5 KiB each): with a seed they repeat when the symbols
    go live in the same order. Only the symbols in :attr:`live` tick (all of them unless
    ``live=False``: then each joins with :meth:`go_live` once its history is applied).
    """

    def __init__(
        self,
        symbols: tuple[str, ...] | list[str] = DEFAULT_SYMBOLS,
        *,
        seed: int | None = None,
        volatility: float = 0.002,
        drift: float = 0.0,
        live: bool = True,
    ) -> None:
        self.rng = random.Random(seed)
        self.volatility = volatility
        self.drift = drift
        self.prices = {s: _START_PRICES.get(s, 50.0 + 150.0 * self.rng.random()) for s in symbols}
        #: Price before the seeded history (where :meth:`replay_history` starts again).
        self.start_prices = dict(self.prices)
        self._base = seed if seed is not None else self.rng.getrandbits(64)
        #: Symbols that tick, in order (a dict used as an ordered set).
        self.live: dict[str, None] = dict.fromkeys(symbols if live else ())

    @property
    def symbols(self) -> list[str]:
        return list(self.prices)

    def _history_rng(self, symbol: str) -> random.Random:
        return random.Random(f"{self._base}:{symbol}")

    def go_live(self, symbol: str) -> None:
        """``symbol`` ticks from the next round on."""
        self.live[symbol] = None

    def _draw(self, rng: random.Random, price: float, dt: float) -> tuple[float, float]:
        sigma = self.volatility
        shock = (self.drift - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * rng.gauss(0, 1)
        return round(price * math.exp(shock), 4), float(rng.randint(1, 50) * 100)

    def step(
        self, timestamp: datetime, dt: float, symbols: Iterable[str] | None = None
    ) -> list[Tick]:
        """One tick per live symbol (or per symbol of ``symbols``), ``dt`` seconds after
        the previous one."""
        ticks = []
        prices, draw, rng = self.prices, self._draw, self.rng
        for symbol in self.live if symbols is None else symbols:
            price, volume = draw(rng, prices[symbol], dt)
            prices[symbol] = price
            ticks.append(Tick(symbol, price, volume, timestamp))
        return ticks

    def symbol_history(self, symbol: str, steps: int, interval: float, end: datetime) -> list[Tick]:
        """``symbol``'s ``steps`` past ticks ending at ``end``; its live ticks go on from
        the last one. Call once per symbol, before it goes live."""
        ticks = self._history(
            self._history_rng(symbol), symbol, self.start_prices[symbol], steps, interval, end
        )
        if ticks:
            self.prices[symbol] = ticks[-1].price
        return ticks

    def replay_history(self, symbol: str, steps: int, interval: float, end: datetime) -> list[Tick]:
        """The same ticks as :meth:`symbol_history` gave (drawn again, nothing changes)."""
        rng = self._history_rng(symbol)
        return self._history(rng, symbol, self.start_prices[symbol], steps, interval, end)

    def _history(
        self,
        rng: random.Random,
        symbol: str,
        price: float,
        steps: int,
        interval: float,
        end: datetime,
    ) -> list[Tick]:
        ticks = []
        for i in range(steps, 0, -1):
            price, volume = self._draw(rng, price, interval)
            ticks.append(Tick(symbol, price, volume, end - timedelta(seconds=i * interval)))
        return ticks

    def history(self, steps: int, interval: float, end: datetime) -> Iterator[list[Tick]]:
        """``steps`` past rounds of ticks ending at ``end`` (to start instruments warm)."""
        paths = [self.symbol_history(s, steps, interval, end) for s in self.prices]
        for i in range(steps):
            yield [path[i] for path in paths]


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

    #: Ticks drawn (and stamped) together.
    CHUNK = 32

    def __init__(
        self,
        market: SimulatedMarket,
        rate: float,
        on_tick: Callable[[Tick], None],
        log: logging.Logger | None = None,
        *,
        slice_seconds: float = 0.002,
        published: Callable[[], int] | None = None,
    ) -> None:
        self.market = market
        self.rate = rate
        #: Longest run of ticks between two yields to the event loop.
        self.slice_seconds = slice_seconds
        #: A counter of published frames (``Hub.published``): when it moved during a chunk,
        #: the loop is let go at once so the flusher writes those frames.
        self.published = published
        self.on_tick = on_tick
        self.log = log or logging.getLogger(__name__)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        interval = 1.0 / self.rate
        deadline = loop.time()
        chunk = self.CHUNK
        while True:
            deadline += interval
            # A round of a large universe is drawn in chunks, each stamped when drawn, and
            # the loop is let go whenever ``slice_seconds`` went by: frames of watched
            # topics go out at once instead of after the whole round.
            symbols = list(self.market.live)
            since = loop.time()
            published = self.published
            mark = published() if published is not None else 0
            for start in range(0, len(symbols), chunk):
                for tick in self.market.step(utc_now(), interval, symbols[start : start + chunk]):
                    try:
                        self.on_tick(tick)
                    except Exception:  # one bad tick must not stop the feed
                        self.log.exception("rtstream: failed to process tick %s", tick)
                    self.ticks += 1
                if loop.time() - since > self.slice_seconds or (
                    published is not None and published() != mark
                ):
                    await asyncio.sleep(0)
                    since = loop.time()
                    mark = published() if published is not None else 0
            delay = deadline - loop.time()
            if delay < -1.0:  # fell far behind (suspended laptop): do not burst to catch up
                deadline = loop.time()
            await asyncio.sleep(max(0.0, delay))
