"""Health a person can read: round trip and per-topic silence, with a fake clock."""

from __future__ import annotations

import pytest

from jupyter_rtstream.client.health import HealthTracker
from jupyter_rtstream.widgets import StatusBadge


def test_ages_intervals_and_silence() -> None:
    health = HealthTracker()
    for k in range(20):  # AAPL every 0.1 s, MSFT every 2 s
        health.message("market_data:AAPL", 100.0 + 0.1 * k)
    for k in range(3):
        health.message("market_data:MSFT", 100.0 + 2.0 * k)
    health.round_trip(0.0042, 101.0)
    topics = ["market_data:AAPL", "market_data:MSFT", "alerts:AAPL"]
    now = 104.2  # AAPL quiet 2.3 s (> 3 x 0.1 s and > 1 s); MSFT 0.2 s
    snap = health.snapshot(now, topics)
    by_topic = {t.topic: t for t in snap.topics}
    assert by_topic["market_data:AAPL"].age == pytest.approx(2.3)
    assert by_topic["market_data:AAPL"].interval == pytest.approx(0.1)
    assert by_topic["market_data:MSFT"].interval == pytest.approx(2.0)
    assert by_topic["alerts:AAPL"].age is None  # nothing yet: not silent (alerts are rare)
    assert snap.silent == ["market_data:AAPL"]
    assert snap.rtt == pytest.approx(0.0042) and snap.rtt_age == pytest.approx(3.2)
    # MSFT becomes silent only after three of its intervals.
    assert health.snapshot(109.9, topics).silent == ["market_data:AAPL"]
    assert health.snapshot(110.1, topics).silent == ["market_data:AAPL", "market_data:MSFT"]
    # A fast topic is never silent within a second.
    health.message("market_data:AAPL", 110.0)
    assert "market_data:AAPL" not in health.snapshot(110.9, topics).silent
    text = snap.text()
    assert "round trip: 4.2 ms" in text and "market_data:AAPL: last 2.3 s ago" in text


def test_badge_shows_health_on_hover_and_turns_amber_when_silent() -> None:
    health = HealthTracker()
    for k in range(10):
        health.message("market_data:AAPL", 10.0 + 0.1 * k)
    health.round_trip(0.003, 10.0)
    badge = StatusBadge()
    badge.state = "connected"
    badge.show_health(health.snapshot(11.0, ["market_data:AAPL"]))
    badge.flush()
    assert "round trip: 3.0 ms" in badge.value and 'data-silent="0"' in badge.value
    assert "#2f855a" in badge.value  # green
    badge.show_health(health.snapshot(20.0, ["market_data:AAPL"]))
    badge.flush()
    assert 'data-silent="1"' in badge.value and "#d69e2e" in badge.value  # amber
    assert "silent: market_data:AAPL" in badge.value
    badge.close()
