"""Scenario 1, kill -9 cycles: SIGKILL a real server at random points and restart it on the
same port and database, again and again, while an alert rule fires and clients listen.

A driver posts crossing ticks at random intervals (each fires one alert, committed to SQLite
then published), so kills land before, during and after SQLite writes. ``clients`` Python
streams subscribe to the rule's alert topic and to ``market_data:AAPL``. Figures:

- alerts fired (the SQLite history) vs delivered to each client, by ``alert_id`` (unique
  across restarts: the database survives): 0 lost, 0 duplicated, none that SQLite does not
  hold (an alert is published only after its commit);
- resume time: from the restarted server listening to each client's first market-data
  message, p50 / p95 / max (goal p95 <= 1.5 s, timed);
- market-data gaps: every break of a topic's (epoch, seq) sequence announced by a gap event
  (``recovered: false``), none silent.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

from ..client import ConnectionState, Stream
from ..testing import ServerProcess, restart_timed
from ._common import (
    add_crossing_rule,
    alert_history,
    post_ticks,
    server_config,
    wait_for,
)
from .recorder import Recorder
from .result import Result, percentile

SYMBOL = "CHAOSK"
DATA_TOPIC = "market_data:AAPL"


async def run(cycles: int = 100, clients: int = 20, seed: int = 12) -> Result:
    rng = random.Random(seed)
    result = Result(
        scenario="1. kill -9 cycles",
        load=f"{clients} Python clients, 1 alert rule firing every 0.1-0.6 s, simulated "
        f"feed 10 ticks/s per symbol, {cycles} cycles",
        faults=f"SIGKILL at a random point (0-1.5 s into each run, during alert commits) x "
        f"{cycles}, restart on the same port and SQLite file",
    )
    server = ServerProcess(config=server_config())
    await asyncio.to_thread(server.start)
    streams = [
        Stream(server.url, server.token, rng=random.Random(seed + i)) for i in range(clients)
    ]
    recorders = [Recorder(s) for s in streams]
    resume: list[float] = []
    unresumed = 0
    driver: asyncio.Task[None] | None = None
    fired_before: set[int] = set()
    try:
        await add_crossing_rule(server, SYMBOL)
        fired_before = set(await alert_history(server, SYMBOL))
        for stream in streams:
            await stream.__aenter__()
            await stream.subscribe("alerts", SYMBOL)
            await stream.subscribe("market_data", "AAPL")

        async def drive() -> None:
            while True:
                with contextlib.suppress(Exception):  # the server is down half the time
                    await post_ticks(server, SYMBOL, [99.0, 101.0])
                await asyncio.sleep(rng.uniform(0.1, 0.6))

        driver = asyncio.ensure_future(drive())
        for cycle in range(cycles):
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            server.kill()
            await wait_for(
                lambda: all(s.state is not ConnectionState.CONNECTED for s in streams), 30
            )
            listen = await restart_timed(server)
            await wait_for(
                lambda at=listen: all(r.first_data_after(at) for r in recorders),  # type: ignore[misc]
                60,
            )
            for rec in recorders:
                first = rec.first_data_after(listen)
                if first is None:
                    unresumed += 1
                else:
                    resume.append(first - listen)
            if (cycle + 1) % 10 == 0:
                print(f"  kill -9: {cycle + 1}/{cycles} cycles", flush=True)
        driver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await driver
        await post_ticks(server, SYMBOL, [99.0, 101.0])  # one last alert, after every kill
        topic = f"alerts:{SYMBOL}"

        async def settled() -> list[int]:
            return [i for i in await alert_history(server, SYMBOL) if i not in fired_before]

        expected = await settled()
        await wait_for(
            lambda: all(
                sorted(set(r.alert_ids[topic]) - fired_before) == expected for r in recorders
            ),
            60,
        )
        expected = await settled()
        fired = set(expected)
        lost = dup = phantom = silent = data_lost = data_dup = 0
        out_of_order = 0
        for rec in recorders:
            got = [i for i in rec.alert_ids[topic] if i not in fired_before]
            lost += len(fired - set(got))
            dup += len(got) - len(set(got))
            phantom += len(set(got) - fired)
            out_of_order += int(got != sorted(got))
            lo, du, si = rec.continuity(DATA_TOPIC)
            data_lost, data_dup, silent = data_lost + lo, data_dup + du, silent + si
        gaps = sum(len([g for g in r.gaps if g.topic == DATA_TOPIC]) for r in recorders)
        p50, p95 = percentile(resume, 0.5), percentile(resume, 0.95)
        worst = max(resume) if resume else float("nan")
        result.figure = (
            f"{len(expected)} alerts fired, delivered to {clients} clients: lost {lost}, "
            f"duplicated {dup}, not in SQLite {phantom}; resume after listen p50 {p50:.2f} s, "
            f"p95 {p95:.2f} s, max {worst:.2f} s (n={len(resume)}); market-data gaps "
            f"announced {gaps}, silent {silent}"
        )
        result.goal("0 alerts lost", lost == 0, f"{lost} lost")
        result.goal("0 alerts duplicated", dup == 0, f"{dup} duplicated")
        result.goal("no alert delivered that SQLite lacks", phantom == 0, f"{phantom}")
        result.goal("alerts in firing order", out_of_order == 0, f"{out_of_order} clients")
        result.goal("every client resumed after every restart", unresumed == 0, f"{unresumed}")
        result.goal(
            "every market-data gap announced (none silent)", silent == 0, f"{silent} silent"
        )
        result.goal(
            "0 market data duplicated within an epoch", data_dup == 0, f"{data_dup} duplicated"
        )
        result.goal("resume p95 <= 1.5 s", p95 <= 1.5, f"p95 {p95:.2f} s", timed=True)
        result.details = {
            "cycles": cycles,
            "clients": clients,
            "alerts_fired": len(expected),
            "lost": lost,
            "duplicated": dup,
            "phantom": phantom,
            "resume_p50_s": round(p50, 3),
            "resume_p95_s": round(p95, 3),
            "resume_max_s": round(worst, 3),
            "resume_samples": len(resume),
            "unresumed": unresumed,
            "market_data_gaps_announced": gaps,
            "market_data_silent_gaps": silent,
            "market_data_lost_within_epoch": data_lost,
            "reconnects": [s.stats.reconnects for s in streams],
        }
    finally:
        if driver is not None:
            driver.cancel()
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
        await asyncio.to_thread(server.close)
    return result
