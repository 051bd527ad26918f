"""CSV replay: drive the server from recorded ticks (``timestamp,symbol,price,volume``).

``speed`` 1.0 replays at the recorded pace, 10.0 ten times faster, 0 as fast as the event
loop allows (yielding between ticks so clients are still served). Rows keep their recorded
timestamps, so analytics and alert windows behave as they did live.
"""

from __future__ import annotations

import asyncio
import csv
import logging
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from ..core.rest import TickIn
from .feed import BackgroundSource, Tick


def read_ticks(path: str | Path) -> Iterator[Tick]:
    """Parse and validate every row (header ``timestamp,symbol,price,volume``)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"timestamp", "symbol", "price"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                tick = TickIn.model_validate(
                    {
                        "symbol": row["symbol"],
                        "price": float(row["price"]),
                        "volume": float(row.get("volume") or 0.0),
                        "timestamp": row["timestamp"],
                    }
                )
                if tick.timestamp is None:
                    raise ValueError("missing timestamp")
            except (TypeError, ValueError) as exc:  # short rows give None fields
                raise ValueError(f"{path}:{line}: {exc}") from exc
            yield Tick(tick.symbol, tick.price, tick.volume, tick.timestamp)


class CsvReplay(BackgroundSource):
    """Replays a CSV file on the event loop at ``speed`` times the recorded pace."""

    def __init__(
        self,
        path: str | Path,
        speed: float,
        on_tick: Callable[[Tick], None],
        log: logging.Logger | None = None,
    ) -> None:
        self.path = path
        self.speed = speed
        self.on_tick = on_tick
        self.log = log or logging.getLogger(__name__)
        self.finished = False

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        first: datetime | None = None
        try:
            for tick in read_ticks(self.path):
                if first is None:
                    first = tick.timestamp
                if self.speed > 0:
                    due = started + (tick.timestamp - first).total_seconds() / self.speed
                    await asyncio.sleep(max(0.0, due - loop.time()))
                elif self.ticks % 100 == 0:
                    await asyncio.sleep(0)
                try:
                    self.on_tick(tick)
                except Exception:  # one bad tick must not stop the replay
                    self.log.exception("rtstream: refused replayed tick %s", tick)
                self.ticks += 1
        except (OSError, ValueError):
            self.log.exception("rtstream: CSV replay of %s stopped", self.path)
        self.finished = True
        self.log.info("rtstream: CSV replay of %s done (%d ticks)", self.path, self.ticks)
