"""Real-browser tests: JupyterLab with the rtstream extension, in Debian's Chromium.

One ``jupyter lab`` subprocess (seeded simulated feed, 2 s heartbeats) and one browser page
for the whole module; the tests run in order (the restart test last) and assert behaviour,
never timings. The latency figures and screenshots land in ``build/ui-artifacts/``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect

from jupyter_rtstream.bench.browser import (
    CHROMIUM,
    SYMBOLS,
    LabProcess,
    chromium,
    collect_latency,
    open_lab,
    open_monitor,
)

pytestmark = pytest.mark.timeout(240)

#: What the monitor shows for a figure it does not have yet (an en dash).
MISSING = "\u2013"

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "ui-artifacts"
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


@pytest.fixture(scope="module")
def lab() -> Iterator[LabProcess]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    server = LabProcess()
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def page(lab: LabProcess) -> Iterator[Page]:
    with chromium() as context:
        yield open_lab(context, lab)


def status(page: Page) -> Locator:
    return page.locator(".jp-RtstreamStatus")


def row_seq(page: Page, symbol: str) -> str:
    return str(page.locator(f"tr[data-symbol='{symbol}']").get_attribute("data-seq"))


def wait_all_rows_advance(page: Page) -> None:
    """Every simulated symbol's row shows a price and its seq moves on."""
    before = {}
    for symbol in SYMBOLS:
        row = page.locator(f"tr[data-symbol='{symbol}']")
        expect(row).to_have_attribute("data-seq", re.compile(r"^\d+$"), timeout=30_000)
        before[symbol] = row_seq(page, symbol)
    for symbol in SYMBOLS:
        expect(page.locator(f"tr[data-symbol='{symbol}']")).not_to_have_attribute(
            "data-seq", before[symbol], timeout=30_000
        )


def test_status_bar_reaches_connected(page: Page) -> None:
    expect(status(page)).to_have_attribute("data-rtstream-state", "connected", timeout=30_000)
    expect(status(page)).to_have_text("rtstream: connected")
    # The hover title has the subscriptions, rate, last-message age and RTT.
    expect(status(page)).to_have_attribute("title", re.compile("round trip: [0-9.]+ ms"))
    expect(status(page)).to_have_attribute("title", re.compile("subscriptions"))


def test_monitor_shows_every_simulated_symbol_updating(page: Page) -> None:
    open_monitor(page)
    wait_all_rows_advance(page)
    cells = page.locator("tr[data-symbol='AAPL'] td")
    expect(cells).to_have_count(7)
    expect(cells.nth(1)).not_to_have_text(MISSING)  # price
    expect(cells.nth(4)).not_to_have_text(MISSING, timeout=30_000)  # RSI (warm from history)
    expect(cells.nth(6)).to_have_text(re.compile("^(bullish|bearish|neutral)$"), timeout=30_000)
    assert page.locator(".jp-RtstreamMonitor-invalid").text_content() == ""


def test_commands_show_the_server_status(page: Page) -> None:
    # Not awaited: the command resolves when the dialog closes.
    page.evaluate("() => { void window.jupyterapp.commands.execute('rtstream:show-status'); }")
    dialog = page.locator(".jp-Dialog pre.jp-RtstreamStatusDialog")
    expect(dialog).to_contain_text('"protocol_versions"', timeout=15_000)
    page.locator(".jp-Dialog .jp-mod-accept").click()
    expect(dialog).to_have_count(0)


def test_html_from_the_wire_renders_as_text(page: Page, lab: LabProcess) -> None:
    # A symbol holding HTML never gets in: the server refuses the whole batch.
    code, body = lab.request_json(
        "POST", "rtstream/api/ticks", {"ticks": [{"symbol": XSS, "price": 1, "volume": 1}]}
    )
    assert code == 400, body
    # An alert rule named with HTML: stored, fired, shown.

    def tick(price: float) -> tuple[int, object]:
        batch = {"ticks": [{"symbol": "XSSTEST", "price": price, "volume": 1}]}
        return lab.request_json("POST", "rtstream/api/ticks", batch)

    assert tick(10.0)[0] == 200
    code, rule = lab.request_json(
        "POST",
        "rtstream/api/alerts/rules",
        {
            "rule_name": XSS,
            "symbol": "XSSTEST",
            "condition": "price_above",
            "target_value": 100.0,
            "severity": "high",
        },
    )
    assert code == 201, rule
    assert tick(10.0)[0] == 200
    assert tick(200.0)[0] == 200
    alert = page.locator(".jp-RtstreamMonitor-alert", has_text="XSSTEST").first
    expect(alert).to_be_visible(timeout=30_000)
    expect(alert.locator(".jp-RtstreamMonitor-alertRule")).to_have_text(XSS)
    expect(alert).to_have_class(re.compile("jp-mod-high"))
    monitor = page.locator(".jp-RtstreamMonitor")
    assert monitor.locator("img, script").count() == 0
    assert page.evaluate("() => window.__xss === undefined")
    # The new symbol was discovered and streams like the others.
    expect(page.locator("tr[data-symbol='XSSTEST']")).to_be_visible(timeout=30_000)


def test_latency_from_timestamp_to_paint(page: Page) -> None:
    result = collect_latency(page, messages=600)
    assert result["painted"] >= 500
    assert {f"market_data:{s}" for s in SYMBOLS} <= set(result["topics"])
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "ui-latency.json").write_text(json.dumps(result, indent=2))
    page.screenshot(path=str(ARTIFACTS / "monitor.png"))


def test_server_killed_and_restarted(page: Page, lab: LabProcess) -> None:
    before = {symbol: row_seq(page, symbol) for symbol in SYMBOLS}
    lab.kill()
    expect(status(page)).to_have_text(re.compile("^rtstream: reconnecting"), timeout=30_000)
    expect(page.locator(".jp-RtstreamMonitor-state")).to_have_text(re.compile("^reconnecting"))
    lab.start(timeout=120)
    expect(status(page)).to_have_text("rtstream: connected", timeout=60_000)
    # The monitor resumes: every row moves on from where it stood before the kill.
    for symbol in SYMBOLS:
        expect(page.locator(f"tr[data-symbol='{symbol}']")).not_to_have_attribute(
            "data-seq", before[symbol], timeout=30_000
        )
    wait_all_rows_advance(page)
    page.screenshot(path=str(ARTIFACTS / "monitor-after-restart.png"))
