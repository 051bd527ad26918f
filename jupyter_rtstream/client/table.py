"""A bounded, time-indexed table that grows one row at a time: the storage of live frames.

Appending must not copy the window (a 10,000-row DataFrame rebuilt per message would cost
milliseconds): rows go into plain Python lists (the *open chunk*); every ``chunk`` rows the
open chunk is frozen into a DataFrame once, and whole frozen chunks fall off the front when
the window no longer needs them. So an append is a few ``list.append`` calls, and every
``chunk``-th one also pays the chunk's conversion: O(1) amortised. Reading :attr:`df`
concatenates the frozen chunks and the open one (O(window)) and caches the result until the
next append.

Cells: numbers and strings as they come; columns listed in ``time_columns`` (and the index)
hold POSIX seconds, turned into UTC timestamps when a chunk is frozen; ``seq`` becomes a
nullable ``Int64`` column (gap marker rows have none). A row without a column gets NaN/None
there, a new column is back-filled for the rows before it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from ._pandas import pd

#: Rows per chunk: big enough that freezing is rare, small enough that the window's tail
#: beyond ``window`` (kept until its chunk falls off) stays small.
DEFAULT_CHUNK = 1024


def _to_time(values: Iterable[float | None]) -> Any:
    """POSIX seconds (exact to the microsecond) as a UTC datetime array; None is NaT."""
    micros = pd.Series(list(values), dtype="float64").mul(1e6).round()
    return pd.to_datetime(micros, unit="us", utc=True).array


class ChunkedTable:
    """Rows ``(time, {column: value})`` in amortised O(1), read as one DataFrame."""

    def __init__(
        self,
        window: int,
        *,
        index_name: str = "time",
        time_columns: Iterable[str] = (),
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        self.window = window
        self.index_name = index_name
        self.time_columns = set(time_columns)
        self.chunk = min(chunk, window)
        self._frozen: deque[Any] = deque()  # DataFrames of exactly ``chunk`` rows
        self._frozen_rows = 0
        self._times: list[float] = []
        self._cols: dict[str, list[Any]] = {}
        self._keys: tuple[str, ...] = ()
        self._cache: Any = None
        #: Rows appended since the table was created (never decreases).
        self.appended = 0

    def __len__(self) -> int:
        """Rows the table holds now (at most ``window``)."""
        return min(self.window, self._frozen_rows + len(self._times))

    def append(self, time: float, row: Mapping[str, Any]) -> None:
        """Add one row at ``time`` (POSIX seconds)."""
        times, cols = self._times, self._cols
        n = len(times)
        times.append(time)
        keys = tuple(row)
        if keys == self._keys:  # the common case: the same columns as the previous row
            for key, value in row.items():
                cols[key].append(value)
        else:
            for key, value in row.items():
                column = cols.get(key)
                if column is None:
                    column = cols[key] = [None] * n
                column.append(value)
            for column in cols.values():
                if len(column) == n:
                    column.append(None)
            self._keys = keys if len(keys) == len(cols) else ()
        self.appended += 1
        self._cache = None
        if n + 1 >= self.chunk:
            self._freeze()

    def _freeze(self) -> None:
        self._frozen.append(self._build(self._times, self._cols))
        self._frozen_rows += len(self._times)
        self._times, self._cols, self._keys = [], {}, ()
        # Whole chunks the window no longer reaches fall off the front.
        while self._frozen and self._frozen_rows - len(self._frozen[0]) >= self.window:
            self._frozen_rows -= len(self._frozen.popleft())

    def _build(self, times: list[float], cols: dict[str, list[Any]]) -> Any:
        data: dict[str, Any] = {}
        for key, values in cols.items():
            if key in self.time_columns:
                data[key] = _to_time(values)
            elif key == "seq":
                data[key] = pd.array(values, dtype="Int64")
            else:
                data[key] = values
        index = pd.DatetimeIndex(_to_time(times), name=self.index_name)
        return pd.DataFrame(data, index=index)

    @property
    def df(self) -> Any:
        """The last ``window`` rows as one DataFrame (cached until the next append)."""
        if self._cache is None:
            parts = list(self._frozen)
            if self._times or not parts:
                parts.append(self._build(self._times, self._cols))
            frame = parts[0] if len(parts) == 1 else pd.concat(parts)
            self._cache = frame.iloc[-self.window :]
        return self._cache

    def clear(self) -> None:
        self._frozen.clear()
        self._frozen_rows = 0
        self._times, self._cols, self._keys = [], {}, ()
        self._cache = None
