from __future__ import annotations

from collections.abc import Iterator

import pytest

from jupyter_rtstream.testing import ServerProcess

from ._helpers import LIVE_CONFIG


@pytest.fixture(scope="session")
def live_server() -> Iterator[ServerProcess]:
    """A real ``jupyter server`` with the extension: seeded feed, 1 s heartbeats."""
    server = ServerProcess(config=LIVE_CONFIG)
    server.start()
    try:
        yield server
    finally:
        server.close()
