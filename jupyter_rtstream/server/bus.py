"""A server's side of the Redis bus: one reader task relaying the shared feed to the hub.

With ``c.RtstreamApp.bus = "redis"`` the server runs no feed. :class:`RedisRelay` reads
every shared stream of the feed's epoch with one blocking ``XREAD`` (one task per server,
not one per client), continuing after the last entry it read, and hands each entry to
:meth:`Hub.relay <..core.hub.Hub.relay>` with the feed's seq; each ``market_data`` tick
also goes to the pipeline (:meth:`Pipeline.on_relayed`), which evaluates *this* server's
alert rules on it. It reads all shared streams, not only subscribed ones: alert rules
need every tick, and a first subscriber then gets a current snapshot and contiguous seqs at once.

A resume the replay buffer no longer covers is filled from the stream (``XRANGE``,
:meth:`fill`). Redis unreachable: ``state`` is ``"degraded"`` (clients stay connected and
are told in ``connection_status``), the reader reconnects with full-jitter backoff and
continues from its last entry; entries already trimmed from the stream show up as a seq
gap, which :meth:`Hub.relay` reports and the server announces to the subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..core.vocabulary import FeedState, topic_for
from .bus_keys import (
    EPOCH_KEY,
    FIELD,
    INSTRUMENTS_KEY,
    SHARED_KINDS,
    entry_id,
    full_jitter,
    seq_of,
    stream_key,
    topic_of,
)
from .feed import Tick

log = logging.getLogger(__name__)


class RedisRelay:
    """Reads the shared streams into ``hub``; see the module docstring."""

    def __init__(
        self,
        url: str,
        hub: Hub,
        instruments: InstrumentRegistry,
        on_tick: Callable[[Tick, bool], None],
        *,
        warm: int = 1000,
        block_ms: int = 1000,
        on_state: Callable[[FeedState], None] = lambda state: None,
        on_gap: Callable[[str], object] = lambda topic: None,
        on_epoch: Callable[[str], None] = lambda epoch: None,
    ) -> None:
        self.url = url
        self.hub = hub
        self.instruments = instruments
        self.on_tick = on_tick
        self.warm = warm
        self.block_ms = block_ms
        self.on_state = on_state
        self.on_gap = on_gap
        self.on_epoch = on_epoch
        self.state: FeedState = "degraded"
        self.epoch: str | None = None
        self.shared: frozenset[str] = frozenset()
        self.read = 0
        self.gaps = 0
        self.reconnects = 0
        self.backfilled = 0
        self.last_error: str | None = None
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._checked = 0.0

    # ------------------------------------------------------------------ lifecycle

    def _connect(self) -> Any:
        return aioredis.from_url(
            self.url,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=self.block_ms / 1000 + 5,
        )

    async def sync(self) -> None:
        """Epoch, instruments and a warm replay buffer per shared topic; raises if Redis is
        unreachable or no feed has published yet."""
        if self._client is None:
            self._client = self._connect()
        epoch = await self._client.get(EPOCH_KEY)
        if not epoch:
            raise RedisError("no feed has published on this Redis yet")
        if self.hub.adopt_epoch(epoch):
            # Clients connected under another epoch (a new feed run, or this server's own
            # before Redis was first reached) reconnect and learn the feed's.
            self.on_epoch(epoch)
        self.epoch = epoch
        ids = await self._client.hgetall(INSTRUMENTS_KEY)
        for symbol, iid in sorted(ids.items(), key=lambda kv: int(kv[1])):
            instrument = self.instruments.register(symbol, int(iid))
            if instrument.instrument_id != int(iid):
                log.warning(
                    "rtstream: %s is instrument %d here, %s on the feed",
                    symbol,
                    instrument.instrument_id,
                    iid,
                )
        self.shared = frozenset(ids)
        for topic in self._topics():
            if self.hub.last_seq(topic) == 0:
                entries = await self._client.xrevrange(stream_key(epoch, topic), count=self.warm)
                self._apply(topic, reversed(entries), warm=True)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._client.aclose()
            self._client = None

    def _set_state(self, state: FeedState) -> None:
        if state != self.state:
            self.state = state
            self.hub.feed_state = state
            self.on_state(state)

    async def _run(self) -> None:
        attempt = 0
        synced = self.epoch is not None and self.state == "ok"
        while True:
            try:
                if not synced:
                    await self.sync()
                    synced = True
                    attempt = 0
                    self._set_state("ok")
                await self._read_once()
            except (RedisError, OSError) as exc:
                synced = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                if self.state == "ok":
                    log.warning("rtstream: Redis bus unreachable (%s); reconnecting", exc)
                    self.reconnects += 1
                self._set_state("degraded")
                if self._client is not None:
                    with contextlib.suppress(RedisError, OSError):
                        await self._client.aclose()
                    self._client = None
                attempt += 1
                await asyncio.sleep(full_jitter(attempt, base=0.1, cap=5.0))

    # ------------------------------------------------------------------ reading

    def _topics(self) -> list[str]:
        return [topic_for(kind, s) for s in sorted(self.shared) for kind in SHARED_KINDS]

    async def _read_once(self) -> None:
        epoch = self.epoch
        assert epoch is not None
        streams = {stream_key(epoch, t): entry_id(self.hub.last_seq(t)) for t in self._topics()}
        reply = await self._client.xread(streams, block=self.block_ms, count=1000)
        for key, entries in reply or ():
            self._apply(topic_of(key, epoch), entries, warm=False)
        now = asyncio.get_running_loop().time()
        if now - self._checked >= 1.0:
            # Once a second: a new feed run (epoch) or new instruments (a CSV feed)?
            self._checked = now
            current = await self._client.get(EPOCH_KEY)
            if current != epoch or await self._client.hlen(INSTRUMENTS_KEY) != len(self.shared):
                await self.sync()

    def _apply(self, topic: str, entries: Any, *, warm: bool) -> None:
        is_market = topic.startswith("market_data:")
        for entry, fields in entries:
            text = fields[FIELD]
            frame, gap = self.hub.relay(topic, seq_of(entry), text)
            if frame is None:
                continue
            self.read += 1
            if gap and not warm:
                self.gaps += 1
                self.on_gap(topic)
            if is_market:
                tick = _tick(text)
                if tick is not None:
                    self.on_tick(tick, not warm)

    async def fill(self, topic: str, resume_from: int, epoch: str | None) -> int:
        """Before a resume the replay buffer does not cover: read the gap back from the
        stream (``XRANGE``) into the buffer. Returns how many entries were added."""
        if (
            self._client is None
            or epoch != self.hub.epoch
            or topic not in self.hub.topics
            or not self.hub.topics[topic].relayed
            or self.hub.covers(topic, resume_from, epoch)
        ):
            return 0
        buffer = self.hub.topics[topic].buffer
        end = buffer[0][0] - 1 if buffer else self.hub.last_seq(topic)
        if end <= resume_from:
            return 0
        try:
            entries = await self._client.xrange(
                stream_key(epoch, topic),
                min=entry_id(resume_from + 1),
                max=entry_id(end),
                count=self.hub.replay_hard_limit,
            )
        except (RedisError, OSError) as exc:
            log.info("rtstream: resume gap fill of %s failed: %s", topic, exc)
            return 0
        added = self.hub.backfill(topic, [(seq_of(e), f[FIELD]) for e, f in entries])
        self.backfilled += added
        return added

    def status(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "bus": "redis",
            "epoch": self.epoch,
            "relayed": self.read,
            "gaps": self.gaps,
            "reconnects": self.reconnects,
            "backfilled": self.backfilled,
            "last_error": self.last_error,
        }


def _tick(text: str) -> Tick | None:
    """The tick a relayed ``market_data`` text carries (for this server's alert rules)."""
    try:
        data = json.loads(text)["data"]
        stamp = datetime.fromisoformat(data["timestamp"].replace("Z", "+00:00"))
        return Tick(data["symbol"], float(data["price"]), float(data["volume"]), stamp)
    except (ValueError, KeyError, TypeError):
        return None
