"""The UI tests drive a browser through Playwright's sync API, which runs its own event loop
in this thread: pytest-jupyter's autouse per-test loop fixtures (from tests/conftest.py) would
try to close that running loop. These tests start their servers as subprocesses and need
neither, so they are replaced here by no-ops."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def jp_asyncio_loop() -> Iterator[None]:
    yield None


@pytest.fixture(autouse=True)
def jp_server_cleanup() -> Iterator[None]:
    yield None
