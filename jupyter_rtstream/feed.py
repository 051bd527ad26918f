"""The shared feed service: ticks and analytics computed once, appended to Redis Streams.

    jupyter rtstream feed --redis-url redis://127.0.0.1:6379/0 [--feed simulated|csv]
        [--symbols AAPL,MSFT] [--tick-rate 10] [--seed N] [--csv-path F]
    python -m jupyter_rtstream.feed ...   (the same flags)

It runs the same :class:`~.server.pipeline.Pipeline` and analytics engine as an embedded
server, on a :class:`~.server.bus_feed.TappedHub` that numbers every topic (the feed owns
each ``seq`` and the ``epoch``, one per run) and hands every ``market_data``,
``technical_indicators`` and ``analytics_update`` frame to the Redis sink. Servers with
``c.RtstreamApp.bus = "redis"`` relay them. SIGTERM or SIGINT: stop the sources, flush
what is buffered (at most ``--flush-timeout`` seconds) and exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

from .analytics import AnalyticsEngine
from .core.instruments import InstrumentRegistry
from .core.messages import utc_now
from .server.bus_feed import RedisSink, TappedHub
from .server.feed import DEFAULT_SYMBOLS, BackgroundSource, FeedRunner, SimulatedMarket
from .server.pipeline import Pipeline
from .server.replay import CsvReplay
from .server.synthetic import SyntheticPublisher

log = logging.getLogger("jupyter_rtstream.feed")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="jupyter rtstream feed", description="Shared market feed on Redis Streams."
    )
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    p.add_argument(
        "--feed",
        choices=("simulated", "csv", "synthetic"),
        default="simulated",
        help="synthetic: the benchmark's publisher (market_data only, BENCH0..)",
    )
    p.add_argument("--synthetic-rate", type=float, default=1000.0, help="msg/s, all topics")
    p.add_argument("--synthetic-topics", type=int, default=5)
    p.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS))
    p.add_argument("--tick-rate", type=float, default=10.0, help="rounds of ticks per second")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--csv-path", default="")
    p.add_argument("--replay-speed", type=float, default=1.0)
    p.add_argument("--volatility", type=float, default=0.002)
    p.add_argument("--history-ticks", type=int, default=300, help="warm-up ticks per symbol")
    p.add_argument("--analytics-interval", type=float, default=1.0)
    p.add_argument("--maxlen", type=int, default=10_000, help="entries kept per stream (MAXLEN ~)")
    p.add_argument("--max-buffered", type=int, default=100_000)
    p.add_argument("--flush-timeout", type=float, default=5.0)
    p.add_argument("--log-level", default="INFO")
    return p


def _check(args: argparse.Namespace) -> None:
    if args.tick_rate <= 0:
        raise SystemExit("--tick-rate must be > 0")
    if args.feed == "csv" and not args.csv_path:
        raise SystemExit("--csv-path is required with --feed csv")
    if args.maxlen < 1 or args.max_buffered < 1:
        raise SystemExit("--maxlen and --max-buffered must be >= 1")


async def run(args: argparse.Namespace) -> int:
    symbols = [s.strip().upper() for s in args.symbols.split(",") if s.strip()]
    hub = TappedHub(lambda frame: None)
    registry = InstrumentRegistry(symbols if args.feed == "simulated" else [])
    sink = RedisSink(
        args.redis_url,
        hub.epoch,
        maxlen=args.maxlen,
        max_buffered=args.max_buffered,
        instruments=lambda: {i.symbol: i.instrument_id for i in registry},
    )
    hub.sink = sink.append
    # Every topic: the servers relaying the bus have the watchers, not the feed service.
    pipeline = Pipeline(hub, registry, AnalyticsEngine(), None, publish_all=True)
    source: BackgroundSource
    if args.feed == "simulated":
        market = SimulatedMarket(symbols, seed=args.seed, volatility=args.volatility)
        for round_ in market.history(args.history_ticks, 1.0 / args.tick_rate, utc_now()):
            for tick in round_:
                pipeline.on_tick(tick, publish=False)
        source = FeedRunner(market, args.tick_rate, pipeline.publish_tick, log)
    elif args.feed == "csv":
        source = CsvReplay(args.csv_path, args.replay_speed, pipeline.publish_tick, log)
    else:
        source = SyntheticPublisher(hub, registry, args.synthetic_rate, args.synthetic_topics, log)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    sink.start()
    source.start()

    async def analyse() -> None:
        while True:
            await asyncio.sleep(args.analytics_interval)
            pipeline.publish_analysis(args.analytics_interval)

    analytics = loop.create_task(analyse()) if args.analytics_interval > 0 else None
    log.info("rtstream feed: epoch %s, symbols %s", hub.epoch, ",".join(symbols))
    await stop.wait()
    log.info("rtstream feed: stopping; %d message(s) to flush", len(sink.queue))
    await source.stop()
    if analytics is not None:
        analytics.cancel()
    flushed = await sink.flush(args.flush_timeout)
    await sink.stop()
    log.info(
        "rtstream feed: stopped (written %d, dropped %d, unflushed %d)",
        sink.written,
        sink.dropped,
        0 if flushed else len(sink.queue),
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in[:1] == ["feed"]:  # `jupyter rtstream feed ...` runs `jupyter-rtstream feed ...`
        args_in = args_in[1:]
    args = parser().parse_args(args_in)
    _check(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
