"""The server's Flusher: once per loop iteration, and one failing connection strands nobody."""

from __future__ import annotations

import asyncio

from jupyter_rtstream.server.flush import Flusher


class Conn:
    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.flushes = 0

    def write_pending(self) -> None:
        self.flushes += 1
        if self.fail:
            raise RuntimeError("injected")


def test_flushes_each_woken_connection_once_per_iteration_despite_failures() -> None:
    async def scenario() -> tuple[Conn, Conn, Conn]:
        flusher = Flusher()
        good, bad, late = Conn(), Conn(fail=True), Conn()
        flusher.wake(bad)
        flusher.wake(good)
        await asyncio.sleep(0)  # one iteration: both flushed, the failure contained
        flusher.wake(late)
        await asyncio.sleep(0)
        return good, bad, late

    good, bad, late = asyncio.run(scenario())
    assert (good.flushes, bad.flushes, late.flushes) == (1, 1, 1)
