from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from _helpers import LIVE_CONFIG

from jupyter_rtstream.testing import ServerProcess


@pytest.fixture(scope="session")
def live_server() -> Iterator[ServerProcess]:
    """A real ``jupyter server`` with the extension: seeded feed, 1 s heartbeats."""
    server = ServerProcess(config=LIVE_CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.close()
