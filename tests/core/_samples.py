"""Sample messages and a fake clock shared by the core unit tests."""

from __future__ import annotations

from datetime import datetime, timezone

from jupyter_rtstream.core.errors import ErrorCode
from jupyter_rtstream.core.messages import (
    Ack,
    AckPayload,
    Alert,
    AlertPayload,
    AnalysisResults,
    AnalyticsUpdate,
    AnalyticsUpdatePayload,
    ConnectionStatus,
    ConnectionStatusPayload,
    Error,
    ErrorPayload,
    MarketData,
    MarketDataPayload,
    Ping,
    Subscribe,
    TechnicalIndicators,
    TechnicalIndicatorsPayload,
    Unsubscribe,
)

T0 = datetime(2024, 3, 1, 14, 30, 15, 123456, tzinfo=timezone.utc)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def market_data(symbol: str = "AAPL", price: float = 101.25, *, seq: int = 0) -> MarketData:
    return MarketData(
        topic=f"market_data:{symbol}",
        seq=seq,
        timestamp=T0,
        data=MarketDataPayload(
            instrument_id=1,
            symbol=symbol,
            price=price,
            volume=1200.0,
            timestamp=T0,
            change_percent=0.42,
        ),
    )


def alert(symbol: str = "AAPL", alert_id: int = 1, *, message: str = "AAPL above 100") -> Alert:
    return Alert(
        topic=f"alerts:{symbol}",
        timestamp=T0,
        data=AlertPayload(
            alert_id=alert_id,
            rule_id=7,
            symbol=symbol,
            rule_name="breakout",
            condition="price_above",
            target_value=100.0,
            current_value=101.25,
            severity="high",
            message=message,
            timestamp=T0,
        ),
    )


def technical_indicators(symbol: str = "AAPL") -> TechnicalIndicators:
    return TechnicalIndicators(
        topic=f"technical_indicators:{symbol}",
        seq=3,
        timestamp=T0,
        data=TechnicalIndicatorsPayload(
            instrument_id=1,
            symbol=symbol,
            indicators={"sma_20": 100.5, "rsi_14": None},
            calculated_at=T0,
        ),
    )


def analytics_update(symbol: str = "AAPL") -> AnalyticsUpdate:
    return AnalyticsUpdate(
        topic=f"analytics:{symbol}",
        seq=9,
        timestamp=T0,
        data=AnalyticsUpdatePayload(
            instrument_id=1,
            symbol=symbol,
            results=AnalysisResults(
                trend="bullish",
                momentum=0.8,
                volatility_regime="high",
                session_high=105.0,
                session_low=98.0,
                change_percent=1.5,
                newer_server_figure=3.25,  # extra="allow"
            ),
            calculation_time=T0,
            next_update=T0,
        ),
    )


def connection_status() -> ConnectionStatus:
    return ConnectionStatus(
        timestamp=T0,
        data=ConnectionStatusPayload(
            client_id="c-1",
            connected_at=T0,
            subscriptions=["market_data:AAPL"],
            last_heartbeat=T0,
            epoch="abc-123",
            heartbeat_interval=30.0,
            conflated=4,
            server_version="0.1.0",
        ),
    )


def ack() -> Ack:
    return Ack(
        timestamp=T0,
        data=AckPayload(
            request_id="r1",
            action="subscribe",
            topic="market_data:AAPL",
            subscriptions=["market_data:AAPL"],
            recovered=True,
        ),
    )


def error() -> Error:
    return Error(
        timestamp=T0,
        data=ErrorPayload(
            error_code=ErrorCode.UNKNOWN_INSTRUMENT,
            error_message="unknown symbol 'ZZZ'",
            request_id="r2",
            timestamp=T0,
        ),
    )


def server_samples() -> list[
    MarketData | TechnicalIndicators | AnalyticsUpdate | Alert | ConnectionStatus | Ack | Error
]:
    """One message of each of the 7 server → client types."""
    return [
        market_data(seq=12),
        technical_indicators(),
        analytics_update(),
        alert(),
        connection_status(),
        ack(),
        error(),
    ]


def client_samples() -> list[Subscribe | Unsubscribe | Ping]:
    """One message of each of the 3 client → server types (plus a resume)."""
    return [
        Subscribe(subscription_type="market_data", symbol="AAPL", request_id="s1"),
        Subscribe(
            subscription_type="alerts", symbol="*", request_id="s2", resume_from=4, epoch="e1"
        ),
        Unsubscribe(subscription_type="technical_indicators", instrument_id=2, request_id="u1"),
        Ping(request_id="p1", timestamp=T0),
    ]
