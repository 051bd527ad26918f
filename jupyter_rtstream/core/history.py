"""Reading a topic's history (seeded history, then the replay buffer) by seq or by time.

Pure: :meth:`~.hub.Hub.history` hands this module the topic's two deques of
``(seq, created, text)`` entries. Within each deque seqs are consecutive; between them
there may be a jump (the replay policy trimmed the oldest live messages). Selecting by seq
is arithmetic; selecting by time bisects on the messages' ``timestamp`` (publication order
is time order: the seeded history is dated by its ticks, live messages when published),
decoding only the few messages the bisection looks at.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timezone
from itertools import islice

_Entry = tuple[int, float, str]


def message_time(text: str) -> datetime:
    """The ``timestamp`` of a serialized message (timezone-aware, UTC)."""
    raw = str(json.loads(text)["timestamp"])
    value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class _Chain(Sequence[_Entry]):
    """Two deques read as one sequence (index access for the bisection)."""

    def __init__(self, first: deque[_Entry], second: deque[_Entry]) -> None:
        self.first = first
        self.second = second

    def __len__(self) -> int:
        return len(self.first) + len(self.second)

    def __getitem__(self, index: int) -> _Entry:  # type: ignore[override]
        n = len(self.first)
        return self.first[index] if index < n else self.second[index - n]


def _first_at_or_after(entries: _Chain, since: datetime) -> int:
    low, high = 0, len(entries)
    while low < high:
        mid = (low + high) // 2
        if message_time(entries[mid][2]) < since:
            low = mid + 1
        else:
            high = mid
    return low


def _first_after_seq(entries: deque[_Entry], since_seq: int) -> int:
    """Index of the first entry with ``seq > since_seq`` (seqs consecutive in a deque)."""
    if not entries:
        return 0
    return min(len(entries), max(0, since_seq + 1 - entries[0][0]))


def select(
    seeded: deque[_Entry],
    buffer: deque[_Entry],
    since_seq: int | None,
    since_time: datetime | None,
    limit: int,
) -> list[str]:
    """The texts after ``since_seq`` and at or after ``since_time``, oldest first, at most
    ``limit`` of them."""
    if limit <= 0:
        return []
    start = 0
    if since_seq is not None:
        first = _first_after_seq(seeded, since_seq)
        start = first if first < len(seeded) else len(seeded) + _first_after_seq(buffer, since_seq)
    if since_time is not None:
        start = max(start, _first_at_or_after(_Chain(seeded, buffer), since_time))
    out: list[str] = []
    if start < len(seeded):
        out = [text for _, _, text in islice(seeded, start, start + limit)]
    skip = max(0, start - len(seeded))
    if len(out) < limit:
        out += [text for _, _, text in islice(buffer, skip, skip + limit - len(out))]
    return out
