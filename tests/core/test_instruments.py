"""InstrumentRegistry: ids in registration order, symbol/id resolution, UNKNOWN_INSTRUMENT."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from jupyter_rtstream.core.errors import ErrorCode, ProtocolError
from jupyter_rtstream.core.instruments import Instrument, InstrumentRegistry

SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")


@pytest.fixture
def registry() -> InstrumentRegistry:
    return InstrumentRegistry(SYMBOLS)


def test_ids_follow_registration_order(registry: InstrumentRegistry) -> None:
    assert [(i.instrument_id, i.symbol) for i in registry] == list(enumerate(SYMBOLS, start=1))
    assert len(registry) == 5
    assert "AAPL" in registry
    assert "aapl" not in registry  # membership is on the normalized symbol
    assert registry.get("aapl") is registry.by_id(1)
    assert registry.by_id(6) is None
    assert registry.get("TSLA") is None


def test_register_is_idempotent_and_upper_cases(registry: InstrumentRegistry) -> None:
    assert registry.register("msft") is registry.by_id(2)
    tsla = registry.register("tsla")
    assert (tsla.instrument_id, tsla.symbol) == (6, "TSLA")
    assert registry.register("TSLA") is tsla
    assert len(registry) == 6


def test_resolve(registry: InstrumentRegistry) -> None:
    assert registry.resolve("GOOG", None) == "GOOG"
    assert registry.resolve(None, 4) == "AMZN"
    assert registry.resolve("NVDA", 5) == "NVDA"
    assert registry.resolve("*", None, allow_all=True) == "*"


@pytest.mark.parametrize(
    ("symbol", "instrument_id", "allow_all"),
    [
        ("TSLA", None, False),
        (None, 99, False),
        ("AAPL", 2, False),  # symbol and id disagree
        ("TSLA", 1, False),
        ("AAPL", 42, False),
        ("*", None, False),  # '*' only for alerts
    ],
)
def test_resolve_unknown(
    registry: InstrumentRegistry, symbol: str | None, instrument_id: int | None, allow_all: bool
) -> None:
    with pytest.raises(ProtocolError) as info:
        registry.resolve(symbol, instrument_id, allow_all=allow_all)
    assert info.value.code is ErrorCode.UNKNOWN_INSTRUMENT


def test_instrument_apply_tracks_change_percent() -> None:
    inst = Instrument(1, "AAPL")
    t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert inst.apply(100.0, 10.0, t) == 0.0
    assert inst.apply(110.0, 5.0, t) == pytest.approx(10.0)
    assert inst.apply(90.0, 5.0, t) == pytest.approx(-10.0)
    assert (inst.open_price, inst.price, inst.volume, inst.ticks) == (100.0, 90.0, 5.0, 3)
    assert inst.as_json() == {"instrument_id": 1, "symbol": "AAPL", "price": 90.0}
