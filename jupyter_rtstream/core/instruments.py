"""Known instruments: symbol ↔ instrument id and the latest tick of each (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .errors import ErrorCode, ProtocolError
from .vocabulary import ALL_SYMBOLS, normalize_symbol


@dataclass(slots=True)
class Instrument:
    instrument_id: int
    symbol: str
    price: float | None = None
    volume: float = 0.0
    timestamp: datetime | None = None
    #: First price of the session; ``change_percent`` is measured against it.
    open_price: float | None = None
    ticks: int = 0

    def apply(self, price: float, volume: float, timestamp: datetime) -> float:
        """Record a tick; return its change in percent since the session's first price."""
        if self.open_price is None:
            self.open_price = price
        self.price = price
        self.volume = volume
        self.timestamp = timestamp
        self.ticks += 1
        return (price / self.open_price - 1.0) * 100.0 if self.open_price else 0.0

    def as_json(self) -> dict[str, object]:
        return {"instrument_id": self.instrument_id, "symbol": self.symbol, "price": self.price}


class InstrumentRegistry:
    """Instruments by symbol and id; ids are assigned in registration order from 1."""

    def __init__(self, symbols: list[str] | tuple[str, ...] = ()) -> None:
        self._by_symbol: dict[str, Instrument] = {}
        self._by_id: dict[int, Instrument] = {}
        #: Next free id (ids only grow: computing ``max`` per registration made a
        #: 10,000-symbol registry quadratic).
        self._next_id = 1
        for symbol in symbols:
            self.register(symbol)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._by_symbol

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_symbol.values())

    def __len__(self) -> int:
        return len(self._by_symbol)

    def register(self, symbol: str, instrument_id: int | None = None) -> Instrument:
        """Return the instrument for ``symbol``, registering it if new: with
        ``instrument_id`` when given and free (the shared feed's id), else the next id."""
        symbol = normalize_symbol(symbol)
        found = self._by_symbol.get(symbol)
        if found is not None:
            return found
        if instrument_id is None or instrument_id < 1 or instrument_id in self._by_id:
            instrument_id = self._next_id
        self._next_id = max(self._next_id, instrument_id + 1)
        instrument = Instrument(instrument_id, symbol)
        self._by_symbol[symbol] = instrument
        self._by_id[instrument.instrument_id] = instrument
        return instrument

    def get(self, symbol: str) -> Instrument | None:
        return self._by_symbol.get(normalize_symbol(symbol))

    def by_id(self, instrument_id: int) -> Instrument | None:
        return self._by_id.get(instrument_id)

    def resolve(
        self, symbol: str | None, instrument_id: int | None, *, allow_all: bool = False
    ) -> str:
        """The symbol a request names, or ``UNKNOWN_INSTRUMENT``."""
        if symbol == ALL_SYMBOLS and allow_all:
            return symbol
        by_symbol = self._by_symbol.get(symbol) if symbol is not None else None
        by_id = self._by_id.get(instrument_id) if instrument_id is not None else None
        if symbol is not None and by_symbol is None:
            raise ProtocolError(ErrorCode.UNKNOWN_INSTRUMENT, f"unknown symbol {symbol!r}")
        if instrument_id is not None and by_id is None:
            raise ProtocolError(
                ErrorCode.UNKNOWN_INSTRUMENT, f"unknown instrument_id {instrument_id}"
            )
        if by_symbol is not None and by_id is not None and by_symbol is not by_id:
            raise ProtocolError(
                ErrorCode.UNKNOWN_INSTRUMENT,
                f"symbol {symbol!r} is not instrument_id {instrument_id}",
            )
        found = by_symbol or by_id
        assert found is not None
        return found.symbol
