"""The Redis bus layout shared by the feed service and the servers (DESIGN.md §9).

- ``rtstream:epoch``: the running feed's epoch (one per feed run).
- ``rtstream:instruments``: hash ``symbol -> instrument_id`` of the shared feed.
- ``rtstream:{epoch}:{topic}``: one stream per topic and epoch, entries ``0-{seq}`` with one
  field ``m``, the message's wire text (with that ``seq``). The entry id *is* the seq, so a
  resume gap is one ``XRANGE key 0-{from+1} 0-{to}`` and a reader continues after the last
  entry it read with no duplicates. A new epoch uses new keys; old ones expire.
"""

from __future__ import annotations

import random

PREFIX = "rtstream"
EPOCH_KEY = f"{PREFIX}:epoch"
INSTRUMENTS_KEY = f"{PREFIX}:instruments"
FIELD = "m"
#: Topic kinds the feed computes once and shares; alerts stay per server.
SHARED_KINDS = ("market_data", "technical_indicators", "analytics")
#: Seconds an old epoch's streams are kept after a new feed run starts.
OLD_EPOCH_TTL = 3600


def stream_key(epoch: str, topic: str) -> str:
    return f"{PREFIX}:{epoch}:{topic}"


def topic_of(key: str, epoch: str) -> str:
    return key[len(PREFIX) + len(epoch) + 2 :]


def entry_id(seq: int) -> str:
    return f"0-{seq}"


def seq_of(entry: str | bytes) -> int:
    text = entry.decode() if isinstance(entry, bytes) else entry
    return int(text.rpartition("-")[2])


def full_jitter(attempt: int, base: float = 0.2, cap: float = 10.0) -> float:
    """Full-jitter backoff: uniform in [0, min(cap, base * 2**attempt)]."""
    return random.uniform(0.0, min(cap, base * 2.0 ** min(attempt, 30)))
