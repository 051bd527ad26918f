"""Reconnect delays: full jitter within min(cap, base * 2**n), reset, retry_after floor."""

from __future__ import annotations

import asyncio
import random

from jupyter_rtstream.client import ConnectionState, ReconnectPolicy, StateChange, Stream
from jupyter_rtstream.client.discovery import ServerInfo
from jupyter_rtstream.testing import free_port

from ._helpers import run, wait_until


class MaxRandom(random.Random):
    """Always draws the top of the range: delays equal their ceilings."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_policy_delays_stay_within_ceilings() -> None:
    policy = ReconnectPolicy(rng=random.Random(7))
    for attempt in range(40):
        ceiling = min(30.0, 0.5 * 2**attempt)
        assert policy.ceiling() == ceiling
        assert 0.0 <= policy.next_delay() <= ceiling
        assert policy.attempts == attempt + 1
    policy.reset()
    assert policy.attempts == 0
    assert policy.next_delay() <= 0.5


def test_policy_exact_ceilings_with_max_rng_and_configurable_bounds() -> None:
    policy = ReconnectPolicy(rng=MaxRandom())
    assert [policy.next_delay() for _ in range(9)] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    custom = ReconnectPolicy(base=0.1, cap=1.0, factor=3.0, rng=MaxRandom())
    assert [round(custom.next_delay(), 6) for _ in range(4)] == [0.1, 0.3, 0.9, 1.0]


def test_retry_after_is_a_lower_bound() -> None:
    policy = ReconnectPolicy(rng=random.Random(1))
    assert policy.next_delay(retry_after=3.0) >= 3.0
    assert ReconnectPolicy(rng=MaxRandom()).next_delay(retry_after=0.1) == 0.5


def test_jitter_is_spread_over_the_whole_window() -> None:
    draws = [ReconnectPolicy(rng=random.Random(seed)).next_delay() for seed in range(1000)]
    assert min(draws) < 0.05 and max(draws) > 0.45
    assert 0.2 < sum(draws) / len(draws) < 0.3  # uniform(0, 0.5) has mean 0.25


def test_stream_retries_quickly_while_nothing_listens_on_a_fake_clock() -> None:
    """Against a closed port (refused: nothing listens) the stream retries every
    uniform(0.25, 1.0) s, without escalating (issue 16; slept on a fake clock)."""

    async def scenario() -> None:
        server = ServerInfo(f"http://127.0.0.1:{free_port()}/", "t")
        stream = Stream(server=server, rng=MaxRandom(), backoff_cap=4.0)
        slept: list[float] = []
        changes: list[StateChange] = []
        stream.on("state", changes.append)

        async def fake_sleep(delay: float) -> None:
            slept.append(delay)
            await asyncio.sleep(0)

        stream._sleep = fake_sleep
        stream.start()
        await wait_until(lambda: len(slept) >= 8, what="8 retries")
        assert stream.state is ConnectionState.RECONNECTING
        assert stream.last_error is not None and "could not connect" in str(stream.last_error)
        assert stream.status_text == "server not reachable, retrying"
        await stream.close()
        assert stream.status_text == "closed"
        assert slept[:8] == [1.0] * 8  # MaxRandom: the top of the quick window, every time
        retries = [c for c in changes if c.state is ConnectionState.RECONNECTING]
        assert [c.attempts for c in retries[:4]] == [1, 2, 3, 4]
        assert all(c.next_retry_at is not None for c in retries)
        assert changes[-1].state is ConnectionState.DISCONNECTED
        assert stream.stats.connection_attempts >= 8

    run(scenario())
