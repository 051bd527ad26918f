"""Pure streaming analytics: incremental indicators, market analysis and alert rules.

Standard library only and no I/O, so everything can be tested, replayed and benchmarked
with plain function calls (docs/analytics.md).
"""

from .alerts import (
    CONDITIONS,
    DEFAULT_WINDOW_SECONDS,
    SEVERITIES,
    VALID_INDICATORS,
    AlertRule,
    FiredAlert,
    RuleEvaluator,
    validate_rule,
)
from .analysis import ANALYSIS_KEYS, MarketAnalyzer
from .engine import AnalyticsEngine, TickResult
from .indicator_set import INDICATOR_KEYS, IndicatorSet, check_tick
from .indicators import (
    EMA,
    MACD,
    RSI,
    SMA,
    VWAP,
    BollingerBands,
    BollingerResult,
    MACDResult,
    RollingVolatility,
)

__all__ = [
    "ANALYSIS_KEYS",
    "CONDITIONS",
    "DEFAULT_WINDOW_SECONDS",
    "EMA",
    "INDICATOR_KEYS",
    "MACD",
    "RSI",
    "SEVERITIES",
    "SMA",
    "VALID_INDICATORS",
    "VWAP",
    "AlertRule",
    "AnalyticsEngine",
    "BollingerBands",
    "BollingerResult",
    "FiredAlert",
    "IndicatorSet",
    "MACDResult",
    "MarketAnalyzer",
    "RollingVolatility",
    "RuleEvaluator",
    "TickResult",
    "check_tick",
    "validate_rule",
]
