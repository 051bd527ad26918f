"""Micro-benchmark of the per-tick analytics cost (not a test: timings vary by machine).

Run ``python -m jupyter_rtstream.analytics.bench [--ticks N] [--seed S]``. It feeds seeded
geometric-Brownian-motion ticks for one symbol through ``AnalyticsEngine`` with 10 alert
rules and prints µs per tick for the whole pipeline (indicators + analysis + rules), plus
each stage alone, and ticks/s on one core (the engine is single-threaded).
"""

from __future__ import annotations

import argparse
import gc
import math
import random
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone

from ..core.vocabulary import AlertCondition
from .alerts import AlertRule, RuleEvaluator
from .analysis import MarketAnalyzer
from .engine import AnalyticsEngine
from .indicator_set import IndicatorSet

SYMBOL = "BENCH"


def synthetic_ticks(n: int, seed: int = 42) -> tuple[list[float], list[float], list[datetime]]:
    """GBM prices (sigma ≈ 30 %/yr at 10 ticks/s), integer volumes, 100 ms apart."""
    rng = random.Random(seed)
    dt = 1.0 / (252 * 6.5 * 3600 * 10)
    mu, sigma = 0.05, 0.3
    drift = (mu - 0.5 * sigma * sigma) * dt
    shock = sigma * math.sqrt(dt)
    price = 100.0
    start = datetime(2026, 1, 5, 14, 30, tzinfo=timezone.utc)
    prices: list[float] = []
    volumes: list[float] = []
    stamps: list[datetime] = []
    for i in range(n):
        price *= math.exp(drift + shock * rng.gauss(0.0, 1.0))
        prices.append(round(price, 2))  # tick size: flat runs happen, as in real data
        volumes.append(float(rng.randint(0, 500)))
        stamps.append(start + timedelta(milliseconds=100 * i))
    return prices, volumes, stamps


def bench_rules(symbol: str = SYMBOL) -> list[AlertRule]:
    """Ten rules touching every condition kind."""
    specs: list[tuple[AlertCondition, float, str | None, str | None, float | None]] = [
        ("price_above", 100.5, None, None, None),
        ("price_below", 99.5, None, None, None),
        ("percent_change_above", 0.05, None, None, 60.0),
        ("percent_change_below", -0.05, None, None, 60.0),
        ("indicator_above", 70.0, "rsi_14", None, None),
        ("indicator_below", 30.0, "rsi_14", None, None),
        ("crosses_above", 0.0, "macd", "macd_signal", None),
        ("crosses_below", 0.0, "macd", "macd_signal", None),
        ("crosses_above", 0.0, "price", "bb_upper", None),
        ("crosses_below", 0.0, "price", "bb_lower", None),
    ]
    return [
        AlertRule(
            rule_id=i,
            rule_name=f"bench {i}",
            symbol=symbol,
            condition=condition,
            target_value=target,
            severity="medium",
            indicator=indicator,
            other_indicator=other,
            window_seconds=window,
            cooldown_seconds=5.0,
        )
        for i, (condition, target, indicator, other, window) in enumerate(specs, start=1)
    ]


def _time(run: Callable[[], object], repeat: int) -> float:
    """Best-of-``repeat`` seconds for ``run`` (the least disturbed by other processes)."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: Sequence[str] | None = None) -> None:
    """Parse options, run each stage over the same ticks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ticks", type=int, default=200_000, help="ticks to feed")
    parser.add_argument("--seed", type=int, default=42, help="random seed")
    parser.add_argument("--repeat", type=int, default=3, help="runs per stage; best is shown")
    args = parser.parse_args(argv)
    n = args.ticks
    if n < 1 or args.repeat < 1:
        parser.error("--ticks and --repeat must be >= 1")
    prices, volumes, stamps = synthetic_ticks(n, args.seed)
    rows = list(zip(prices, volumes, stamps, strict=True))
    rules = bench_rules()
    fired = 0

    def indicators_only() -> None:
        indicator_set = IndicatorSet()
        for price, volume, _ in rows:
            indicator_set.update(price, volume)

    def analysis_only() -> None:
        analyzer = MarketAnalyzer()
        for price, volume, stamp in rows:
            analyzer.update(price, volume, stamp)

    snapshots = []
    indicator_set = IndicatorSet()
    for price, volume, _ in rows:
        snapshots.append(indicator_set.update(price, volume))

    def rules_only() -> None:
        evaluators = [RuleEvaluator(rule) for rule in rules]
        for (price, _, stamp), values in zip(rows, snapshots, strict=True):
            t = stamp.timestamp()
            for evaluator in evaluators:
                evaluator.evaluate_at(price, values, stamp, t)

    def pipeline() -> None:
        nonlocal fired
        fired = 0
        engine = AnalyticsEngine()
        for rule in rules:
            engine.add_rule(rule)
        on_tick = engine.on_tick
        for price, volume, stamp in rows:
            fired += len(on_tick(SYMBOL, price, volume, stamp).alerts)

    print(
        f"analytics micro-benchmark: {n:,} ticks, 1 symbol, {len(rules)} rules, "
        f"seed {args.seed}, best of {args.repeat}"
    )
    for label, run in (
        ("indicators (IndicatorSet)", indicators_only),
        ("analysis (MarketAnalyzer)", analysis_only),
        (f"rules ({len(rules)} RuleEvaluators)", rules_only),
        ("whole pipeline (AnalyticsEngine)", pipeline),
    ):
        seconds = _time(run, args.repeat)
        print(f"  {label:34s} {seconds / n * 1e6:7.2f} µs/tick  {n / seconds:>11,.0f} ticks/s")
    print(f"  alerts fired in the pipeline run: {fired}")
    print("  ticks/s is per core: the engine is single-threaded")


if __name__ == "__main__":
    main()
