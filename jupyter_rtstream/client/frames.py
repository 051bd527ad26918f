"""Live pandas DataFrames: history on demand, then every new message, in one bounded table.

::

    frame = await stream.frame("AAPL", kind="market_data", window=5_000)
    frame.df                       # time-indexed DataFrame, one row per message
    frame.on_update(lambda f: ...) # after each new row
    await frame.close()            # unsubscribes only what it subscribed

    frames = await stream.frames(["AAPL", "MSFT"])   # a FrameSet: a dict of LiveFrames
    frames.df                                         # MultiIndex (symbol, time)

How a frame starts without losing or repeating a message: it listens first (live messages
are held back), subscribes (the ack carries the topic's last seq), reads the history over
REST up to that seq (:meth:`~.rest.RestAPI.history_since`), appends it, then the held-back
messages, dropping every seq it already has. Each row carries ``seq``; rows are never
silently joined across missing messages: a seq jump (messages the server no longer holds,
or conflated for a lagging client) or a lost resume (:class:`~.state.GapEvent`) inserts a
*gap row* (``gap=True``, every value missing), so ``pct_change`` and rolling windows do not
bridge it. After a server restart (new epoch) seqs start over.

Columns: ``seq``, ``gap``, then the payload's fields; ``indicators`` and analysis
``results`` are flattened to one column per key. The index is the payload's own time
(``timestamp``, ``calculated_at`` or ``calculation_time``); other time fields are UTC
datetimes too. Storage is :class:`~.table.ChunkedTable` (amortised O(1) appends, the
DataFrame built lazily when read and cached until the next append).
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from ..core.messages import StreamedMessage
from ..core.vocabulary import normalize_symbol, topic_for
from ._pandas import pd
from .rest import RestAPI
from .state import GapEvent
from .table import DEFAULT_CHUNK, ChunkedTable

if TYPE_CHECKING:
    from .stream import Stream

log = logging.getLogger(__name__)

#: ``kind`` (subscription type) → (message type, the payload field that indexes the rows).
KINDS: dict[str, tuple[str, str]] = {
    "market_data": ("market_data", "timestamp"),
    "technical_indicators": ("technical_indicators", "calculated_at"),
    "analytics": ("analytics_update", "calculation_time"),
}
_TIME_FIELDS = frozenset({"timestamp", "calculated_at", "calculation_time", "next_update"})

FrameCallback = Callable[["LiveFrame"], Any]


class _Holds:
    """Per stream: how many open frames use each topic, and which topics frames subscribed
    (only those are unsubscribed, when their last frame closes)."""

    def __init__(self) -> None:
        self.count: Counter[str] = Counter()
        self.owned: set[str] = set()


_HOLDS: weakref.WeakKeyDictionary[Stream, _Holds] = weakref.WeakKeyDictionary()


def row_of(message: StreamedMessage, index_field: str) -> tuple[float, dict[str, Any]]:
    """``(time, row)`` of a message: its index time in POSIX seconds and its cells."""
    data = message.data
    row: dict[str, Any] = {"seq": message.seq, "gap": False}
    time = 0.0
    for key, value in data.__dict__.items():
        if isinstance(value, datetime):
            if key == index_field:
                time = value.timestamp()
            else:
                row[key] = value.timestamp()
        elif isinstance(value, dict):
            row.update(value)
        elif isinstance(value, BaseModel):
            row.update(value.__dict__)
            if value.__pydantic_extra__:
                row.update(value.__pydantic_extra__)
        else:
            row[key] = value
    return time, row


class LiveFrame:
    """A bounded, time-indexed pandas DataFrame of one topic that fills itself.

    Create with ``await stream.frame(symbol, kind=..., window=...)``. :attr:`df` is the last
    ``window`` rows; :attr:`gaps` counts gap rows, :attr:`duplicates` the messages dropped
    because their seq was already in (the history/live overlap).
    """

    def __init__(
        self,
        stream: Stream,
        symbol: str,
        kind: str = "market_data",
        *,
        window: int = 5_000,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.stream = stream
        self.symbol = normalize_symbol(symbol)
        self.kind = kind
        self.topic = topic_for(kind, self.symbol)
        self.message_type, self._index_field = KINDS[kind]
        self.table = ChunkedTable(
            window, index_name=self._index_field, time_columns=_TIME_FIELDS, chunk=chunk
        )
        self.last_seq: int | None = None
        #: The topic's seq the history was loaded up to (the subscribe ack's), if loaded.
        self.history_seq: int | None = None
        self.gaps = 0
        self.duplicates = 0
        self._gap_pending = False
        self._held: list[StreamedMessage | GapEvent] | None = None
        self._callbacks: list[FrameCallback] = []
        self._unregister: list[Callable[[], None]] = []
        self._holding = False
        self.closed = False

    @property
    def window(self) -> int:
        return self.table.window

    @property
    def df(self) -> Any:
        """The frame's rows as a ``pandas.DataFrame`` (cached until the next message)."""
        return self.table.df

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        return (
            f"<LiveFrame {self.topic} rows={len(self)} window={self.window} "
            f"last_seq={self.last_seq} gaps={self.gaps}{' closed' if self.closed else ''}>"
        )

    # ------------------------------------------------------------------ the table

    def append(self, message: StreamedMessage) -> bool:
        """Add one message of the topic (False when its seq is already in, or older)."""
        seq = message.seq
        last = self.last_seq
        if last is not None:
            if seq <= last:
                self.duplicates += 1
                return False
            if seq != last + 1:
                self._gap_pending = True
        time, row = row_of(message, self._index_field)
        if self._gap_pending:
            self._gap_pending = False
            self.gaps += 1
            self.table.append(time, {"gap": True})
        self.table.append(time, row)
        self.last_seq = seq
        return True

    def mark_gap(self, event: GapEvent | None = None) -> None:
        """Messages were lost: the next row is preceded by a gap row. After a server
        restart (``epoch_changed``) seqs start over, so the next seq is accepted whatever it
        is."""
        self._gap_pending = self.last_seq is not None or self._gap_pending
        if event is not None and event.reason == "epoch_changed":
            self.last_seq = None

    # ------------------------------------------------------------------ live updates

    def on_update(self, callback: FrameCallback) -> Callable[[], None]:
        """Call ``callback(frame)`` after each new row (and once the history is loaded);
        returns a function that unregisters it. Exceptions are logged, never raised."""
        self._callbacks.append(callback)

        def remove() -> None:
            if callback in self._callbacks:
                self._callbacks.remove(callback)

        return remove

    def _notify(self) -> None:
        for callback in list(self._callbacks):
            try:
                callback(self)
            except Exception:
                log.exception("rtstream: frame %s update callback failed", self.topic)

    def _on_message(self, message: StreamedMessage) -> None:
        if self._held is not None:
            self._held.append(message)
        elif self.append(message):
            self._notify()

    def _on_gap(self, event: GapEvent) -> None:
        if self._held is not None:
            self._held.append(event)
        else:
            self.mark_gap(event)

    # ------------------------------------------------------------------ lifecycle

    async def start(self, *, history: bool = True) -> LiveFrame:
        """Listen, subscribe (unless this stream already is), load the history up to the
        subscription's seq, then go live. Called by ``stream.frame``."""
        stream = self.stream
        self._held = []
        self._unregister = [
            stream.on(self.message_type, self._on_message, topic=self.topic),
            stream.on("gap", self._on_gap, topic=self.topic),
        ]
        holds = _HOLDS.setdefault(stream, _Holds())
        holds.count[self.topic] += 1
        self._holding = True
        try:
            upto: int | None = None
            if self.topic not in stream.subscriptions:
                ack = await stream.subscribe(self.kind, self.symbol)
                holds.owned.add(self.topic)
                upto = ack.data.seq
            if history:
                await self._load_history(upto)
        except BaseException:
            await self.close()
            raise
        held, self._held = self._held, None
        for item in held:
            if isinstance(item, GapEvent):
                self.mark_gap(item)
            else:
                self.append(item)
        self._notify()
        return self

    async def _load_history(self, upto: int | None) -> None:
        api = RestAPI.for_stream(self.stream)
        if upto is None:  # already subscribed: ask the server where the topic is
            upto = (await api.history(self.symbol, self.kind, limit=1)).seq
        page = await api.history_since(
            self.symbol, self.kind, since=max(0, upto - self.window), until_seq=upto
        )
        epoch = self.stream.epoch
        if epoch is not None and page.epoch != epoch:
            log.info("rtstream: history of %s is from another epoch; skipped", self.topic)
            return
        self.history_seq = upto
        for message in page.messages:
            self.append(message)

    async def close(self) -> None:
        """Stop updating; unsubscribe if this frame subscribed and no other frame of the
        stream still uses the topic. The rows stay readable."""
        if self.closed:
            return
        self.closed = True
        for unregister in self._unregister:
            unregister()
        self._unregister = []
        self._callbacks.clear()
        if not self._holding:
            return
        self._holding = False
        holds = _HOLDS.get(self.stream)
        if holds is None:
            return
        holds.count[self.topic] -= 1
        if holds.count[self.topic] > 0:
            return
        del holds.count[self.topic]
        if self.topic in holds.owned:
            holds.owned.discard(self.topic)
            if not self.stream.closed:
                await self.stream.unsubscribe(self.kind, self.symbol)

    async def __aenter__(self) -> LiveFrame:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class FrameSet(Mapping[str, LiveFrame]):
    """Live frames of several symbols (a read-only dict ``symbol → LiveFrame``)."""

    def __init__(self, frames: Mapping[str, LiveFrame]) -> None:
        self._frames = dict(frames)

    def __getitem__(self, symbol: str) -> LiveFrame:
        return self._frames[normalize_symbol(symbol)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._frames)

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def df(self) -> Any:
        """Every frame in one DataFrame with a ``(symbol, time)`` MultiIndex."""
        return pd.concat(
            {symbol: frame.df for symbol, frame in self._frames.items()}, names=["symbol"]
        )

    def on_update(self, callback: FrameCallback) -> Callable[[], None]:
        """``callback(frame)`` after each new row of any of the frames."""
        removers = [frame.on_update(callback) for frame in self._frames.values()]

        def remove() -> None:
            for remover in removers:
                remover()

        return remove

    async def close(self) -> None:
        for frame in self._frames.values():
            await frame.close()

    async def __aenter__(self) -> FrameSet:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<FrameSet {', '.join(repr(f) for f in self._frames.values())}>"


async def open_frame(
    stream: Stream, symbol: str, kind: str, *, window: int, history: bool = True
) -> LiveFrame:
    return await LiveFrame(stream, symbol, kind, window=window).start(history=history)


async def open_frames(
    stream: Stream, symbols: Sequence[str], kind: str, *, window: int, history: bool = True
) -> FrameSet:
    frames: dict[str, LiveFrame] = {}
    try:
        for symbol in symbols:
            frame = await open_frame(stream, symbol, kind, window=window, history=history)
            frames[frame.symbol] = frame
    except BaseException:
        await FrameSet(frames).close()
        raise
    return FrameSet(frames)
