"""Streamed messages serialized without a pydantic round trip (our own producers only).

Building, validating and dumping a :class:`~.messages.MarketData` model costs about 10 µs
per message with warm caches and over 100 µs when the publisher wakes up cold (every 10 ms
at moderate rates, after the clients and the kernel ran), more than the rest of the hub's
work per message. A producer whose values are typed floats and ints from our own code can
fill a per-topic template instead: the text is exactly what ``encode(model)`` gives for the
same values (same field order, same number and timestamp formats; ``tests/core`` parses the
output back with the models and compares it with ``encode``), split around ``seq`` so that
:meth:`~.hub.Hub.publish_parts` numbers it. A value the template cannot render the way
pydantic does (a float whose ``repr`` is in exponent form, ``inf``, ``nan``) makes
:meth:`MarketDataTemplate.parts` return None: the caller then builds the model as before,
which validates (and refuses non-finite values) as always.
"""

from __future__ import annotations

import json
from datetime import datetime

from .messages import PROTOCOL_VERSION, format_timestamp


def _number(value: float) -> str | None:
    """``value`` as pydantic writes a float, or None when ``repr`` would differ (exponent
    form: pydantic writes ``1e-5`` where ``repr`` says ``1e-05``; ``inf``/``nan``)."""
    text = repr(float(value))
    if "e" in text or "n" in text:
        return None
    return text


class MarketDataTemplate:
    """The ``market_data`` frame text of one topic, with the per-message values left open."""

    __slots__ = ("_data", "_head")

    def __init__(self, topic: str, instrument_id: int, symbol: str) -> None:
        self._head = '{"version":' + json.dumps(PROTOCOL_VERSION) + ',"timestamp":"'
        # Between the top-level timestamp and the seq, then from the seq to the price.
        self._data = (
            '","topic":' + json.dumps(topic, ensure_ascii=False) + ',"seq":',
            ',"message_type":"market_data","data":{"instrument_id":'
            + str(int(instrument_id))
            + ',"symbol":'
            + json.dumps(symbol, ensure_ascii=False)
            + ',"price":',
        )

    def parts(
        self,
        timestamp: datetime,
        price: float,
        volume: float,
        data_timestamp: datetime,
        change_percent: float,
    ) -> tuple[str, str] | None:
        """``(head, tail)``: the frame is ``head + str(seq) + tail``; None when a value
        must go through the model (see the module docstring)."""
        p = _number(price)
        v = _number(volume)
        c = _number(change_percent)
        if p is None or v is None or c is None:
            return None
        at = format_timestamp(timestamp)
        data_at = at if data_timestamp is timestamp else format_timestamp(data_timestamp)
        before_seq, before_price = self._data
        return (
            self._head + at + before_seq,
            f'{before_price}{p},"volume":{v},"timestamp":"{data_at}","change_percent":{c}}}}}',
        )
