"""Hand-built protocol messages for widget tests (no server, no connection)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

from jupyter_rtstream.core.messages import (
    Alert,
    AlertPayload,
    AnalysisResults,
    AnalyticsUpdate,
    AnalyticsUpdatePayload,
    MarketData,
    MarketDataPayload,
    TechnicalIndicators,
    TechnicalIndicatorsPayload,
)

T0 = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")
XSS = "<img src=x onerror=alert(1)>"


def tick_time(seq: int) -> datetime:
    return T0 + timedelta(milliseconds=10 * seq)


def price_of(symbol: str, seq: int) -> float:
    base = 100.0 + 20.0 * SYMBOLS.index(symbol) if symbol in SYMBOLS else 50.0
    return round(base + 2.0 * math.sin(seq / 25.0) + 0.001 * seq, 6)


def market_data(symbol: str, seq: int, price: float | None = None) -> MarketData:
    return MarketData(
        topic=f"market_data:{symbol}",
        seq=seq,
        data=MarketDataPayload(
            instrument_id=1,
            symbol=symbol,
            price=price_of(symbol, seq) if price is None else price,
            volume=100.0 + seq % 7,
            timestamp=tick_time(seq),
            change_percent=0.01 * (seq % 11) - 0.05,
        ),
    )


def indicator_values(symbol: str, seq: int) -> dict[str, float | None]:
    price = price_of(symbol, seq)
    return {
        "sma_20": price - 0.5,
        "ema_12": price - 0.25,
        "ema_26": price - 0.4,
        "rsi_14": 30.0 + seq % 40,
        "macd": 0.01 * (seq % 13),
        "macd_signal": 0.02,
        "macd_hist": 0.01 * (seq % 13) - 0.02,
        "bb_upper": price + 1.5,
        "bb_middle": price - 0.5,
        "bb_lower": price - 2.5,
        "vwap": price - 0.1,
        "volatility_20": 0.001 + 1e-6 * seq,
    }


def indicators(symbol: str, seq: int) -> TechnicalIndicators:
    return TechnicalIndicators(
        topic=f"technical_indicators:{symbol}",
        seq=seq,
        data=TechnicalIndicatorsPayload(
            instrument_id=1,
            symbol=symbol,
            indicators=indicator_values(symbol, seq),
            calculated_at=tick_time(seq),
        ),
    )


def analytics(symbol: str, seq: int, trend: str = "bullish") -> AnalyticsUpdate:
    return AnalyticsUpdate(
        topic=f"analytics:{symbol}",
        seq=seq,
        data=AnalyticsUpdatePayload(
            instrument_id=1,
            symbol=symbol,
            results=AnalysisResults.model_validate(
                {"trend": trend, "momentum": 0.5, "volatility_regime": "normal"}
            ),
            calculation_time=tick_time(seq),
        ),
    )


def alert(
    alert_id: int,
    symbol: str = "AAPL",
    *,
    rule_name: str = "breakout",
    message: str = "price above 100",
    severity: str = "high",
) -> Alert:
    return Alert(
        topic=f"alerts:{symbol}",
        seq=alert_id,
        data=AlertPayload.model_validate(
            {
                "alert_id": alert_id,
                "rule_id": 1,
                "symbol": symbol,
                "rule_name": rule_name,
                "condition": "price_above",
                "target_value": 100.0,
                "current_value": 101.0 + alert_id,
                "severity": severity,
                "message": message,
                "timestamp": tick_time(alert_id),
            }
        ),
    )
