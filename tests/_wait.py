"""The one ``wait_until`` of the test suite: poll a condition up to a deadline.

Tests on a busy two-core machine must never sleep a fixed time and then assert: they wait
for the condition itself, with a generous deadline that only a real bug exhausts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def wait_until(
    predicate: Callable[[], object],
    timeout: float = 15.0,
    what: str = "",
    *,
    interval: float = 0.01,
) -> None:
    """Return once ``predicate()`` is truthy; fail the test after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what or predicate}")
        await asyncio.sleep(interval)
