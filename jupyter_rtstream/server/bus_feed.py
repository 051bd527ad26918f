"""The feed service's side of the Redis bus: every published frame, XADDed in order.

:class:`TappedHub` is the ordinary :class:`~..core.hub.Hub` (it numbers each topic and owns
the epoch) whose every frame also goes to a :class:`RedisSink`. The sink keeps a bounded
in-memory queue: while Redis is unreachable it fills (the oldest frames are dropped past
``max_buffered`` and counted in ``dropped``), and a writer task drains it with pipelined
``XADD key MAXLEN ~ N 0-{seq}`` calls, reconnecting with full-jitter backoff. On
(re)connect it writes the epoch and the instrument ids (a Redis restarted without
persistence has lost them).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, ResponseError

from ..core.hub import Hub
from ..core.messages import StreamedMessage
from ..core.outbox import Frame
from .bus_keys import (
    EPOCH_KEY,
    FIELD,
    INSTRUMENTS_KEY,
    OLD_EPOCH_TTL,
    entry_id,
    full_jitter,
    stream_key,
)

log = logging.getLogger(__name__)

_Entry = tuple[str, int, str]


class RedisSink:
    """Bounded queue of ``(topic, seq, text)`` and the task that appends them to Redis."""

    def __init__(
        self,
        url: str,
        epoch: str,
        *,
        maxlen: int = 10_000,
        max_buffered: int = 100_000,
        batch: int = 500,
        instruments: Callable[[], dict[str, int]] = dict,
    ) -> None:
        self.url = url
        self.epoch = epoch
        self.maxlen = maxlen
        self.max_buffered = max_buffered
        self.batch = batch
        self.instruments = instruments
        self.queue: deque[_Entry] = deque()
        self.written = 0
        self.dropped = 0
        self.reconnects = 0
        self.connected = False
        self._known = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: Any = None

    def append(self, frame: Frame) -> None:
        if frame.topic is None:
            return
        if len(self.queue) >= self.max_buffered:
            self.queue.popleft()
            self.dropped += 1
        self.queue.append((frame.topic, frame.seq, frame.text))
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def flush(self, timeout: float) -> bool:
        """Wait until the queue is written (True) or ``timeout`` passes (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.queue and loop.time() < deadline:
            self._wake.set()
            await asyncio.sleep(0.02)
        return not self.queue

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                if not self.connected:
                    await self._connect()
                    attempt = 0
                await self._write_some()
            except (RedisError, OSError) as exc:
                if self.connected:
                    log.warning("rtstream feed: Redis unreachable (%s); buffering", exc)
                self.connected = False
                attempt += 1
                await asyncio.sleep(full_jitter(attempt))

    async def _connect(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        self._client = aioredis.from_url(
            self.url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2
        )
        old = await self._client.get(EPOCH_KEY)
        await self._client.set(EPOCH_KEY, self.epoch)
        if old and old != self.epoch:
            await self._expire_epoch(old)
        await self._publish_instruments(force=True)
        self.connected = True
        self.reconnects += 1
        log.info("rtstream feed: writing to %s, epoch %s", self.url, self.epoch)

    async def _expire_epoch(self, old: str) -> None:
        keys = [key async for key in self._client.scan_iter(match=stream_key(old, "*"))]
        for key in keys:
            await self._client.expire(key, OLD_EPOCH_TTL)

    async def _publish_instruments(self, *, force: bool = False) -> None:
        ids = self.instruments()
        if ids and (force or len(ids) != self._known):
            await self._client.hset(INSTRUMENTS_KEY, mapping=ids)
            self._known = len(ids)

    async def _write_some(self) -> None:
        if not self.queue:
            self._wake.clear()
            await self._wake.wait()
            return
        await self._publish_instruments()
        batch = [self.queue[i] for i in range(min(self.batch, len(self.queue)))]
        pipe = self._client.pipeline(transaction=False)
        for topic, seq, text in batch:
            pipe.xadd(
                stream_key(self.epoch, topic),
                {FIELD: text},
                id=entry_id(seq),
                maxlen=self.maxlen,
                approximate=True,
            )
        results = await pipe.execute(raise_on_error=False)
        for result in results:
            # Written before a reconnect cut the pipeline's reply: already there, fine.
            if isinstance(result, ResponseError) and "equal or smaller" not in str(result):
                log.error("rtstream feed: XADD refused: %s", result)
            elif isinstance(result, Exception):
                raise result
        for _ in batch:
            self.queue.popleft()
        self.written += len(batch)


class TappedHub(Hub):
    """A hub (the feed's: it assigns every seq and the epoch) whose frames also go to a
    sink. The feed has no WebSocket clients: its replay buffers stay minimal."""

    def __init__(self, sink: Callable[[Frame], None], *, epoch: str | None = None) -> None:
        super().__init__(epoch=epoch, replay_messages=1, replay_seconds=0.0, replay_hard_limit=1)
        self.sink = sink

    def _publish_one(self, name: str, message: StreamedMessage) -> Frame:
        frame = super()._publish_one(name, message)
        self.sink(frame)
        return frame

    def publish_parts(self, name: str, head: str, tail: str) -> Frame:
        """The prebuilt frames of our producers (the synthetic feed) go to the sink too."""
        frame = super().publish_parts(name, head, tail)
        self.sink(frame)
        return frame
