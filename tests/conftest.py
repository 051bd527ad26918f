"""Shared fixtures: a real jupyter server (pytest-jupyter) with the rtstream extension."""

from __future__ import annotations

from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

#: Deterministic, fast settings for in-process servers.
RTSTREAM_TEST_CONFIG: dict[str, Any] = {
    "seed": 1234,
    "tick_rate": 40.0,
    "heartbeat_interval": 30.0,
    "history_ticks": 50,
}


@pytest.fixture
def rtstream_config() -> dict[str, Any]:
    """Override in a test module to change RtstreamApp traits."""
    return {}


@pytest.fixture
def jp_server_config(rtstream_config: dict[str, Any]) -> dict[str, Any]:
    return {
        "ServerApp": {
            "jpserver_extensions": {"jupyter_rtstream": True, "jupyter_server_terminals": False},
        },
        "RtstreamApp": {**RTSTREAM_TEST_CONFIG, **rtstream_config},
    }
