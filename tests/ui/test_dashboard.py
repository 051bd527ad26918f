"""Real-browser test of the notebook Dashboard: a notebook in JupyterLab, run in Chromium.

One ``jupyter lab`` (seeded simulated feed) for the module; the notebook connects a stream
and shows ``Dashboard`` of every simulated symbol. The test samples, in every animation
frame, the newest tick each chart shows (:mod:`jupyter_rtstream.bench.dashboard`) and
asserts behaviour only: the charts update, at least 500 ticks are sampled, the SVG changes
with them, the axis labels are distinct, no error output. The figures (p50/p99 tick
timestamp -> paint, and the kernel's ``dashboard.stats()``) and a screenshot land in
``build/ui-artifacts/``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from jupyter_rtstream.bench.browser import CHROMIUM, SYMBOLS, LabProcess, chromium, open_lab
from jupyter_rtstream.bench.dashboard import (
    CHART_PROBE_SCRIPT,
    collect_ticks,
    dashboard_lab,
    kernel_stats,
    open_dashboard,
)

pytestmark = pytest.mark.timeout(300)

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "ui-artifacts"


@pytest.fixture(scope="module")
def lab() -> Iterator[LabProcess]:
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium"
    server = dashboard_lab()
    server.start(timeout=120)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="module")
def context(lab: LabProcess) -> Iterator[BrowserContext]:
    """One Chromium for the module (Playwright's sync API allows one at a time)."""
    with chromium() as context:
        yield context


@pytest.fixture(scope="module")
def page(lab: LabProcess, context: BrowserContext) -> Page:
    page = open_lab(context, lab, paint_log=False)
    open_dashboard(page, lab)
    return page


def test_every_chart_shows_ticks(page: Page) -> None:
    for symbol in SYMBOLS:
        header = page.locator(f".rtstream-chart-header[data-symbol='{symbol}']")
        before = header.get_attribute("data-tick-ms")
        expect(header).not_to_have_attribute("data-tick-ms", str(before), timeout=30_000)
    charts = page.locator(".rtstream-chart")
    expect(charts).to_have_count(len(SYMBOLS))
    expect(charts.first.locator("svg path.line").first).to_be_visible()
    expect(page.locator(".rtstream-status .rtstream-badge")).to_have_text(
        "\u25cf connected", timeout=30_000
    )


def test_axis_labels_are_distinct(page: Page) -> None:
    """Every axis shows at least two labels, all different. Read between redraws: while d3
    animates an axis to new ticks, the leaving labels are still in the DOM for a moment."""

    def problems() -> list[tuple[str, list[str]]]:
        found = []
        for symbol in SYMBOLS:
            chart = page.locator(".rtstream-chart", has=page.locator(f"[data-symbol='{symbol}']"))
            for axis in chart.locator("g.axis").all():
                labels = [t for t in axis.locator("g.tick text").all_text_contents() if t]
                if len(labels) < 2 or len(set(labels)) != len(labels):
                    found.append((symbol, labels))
        return found

    seen: list[tuple[str, list[str]]] = []
    for _ in range(40):  # a persistent overlap fails every read; a transition only some
        seen = problems()
        if not seen:
            break
        page.wait_for_timeout(100)
    assert seen == []


def test_latency_from_tick_timestamp_to_chart_paint(page: Page) -> None:
    browser = collect_ticks(page, ticks=500)
    assert browser["ticks"] >= 500
    # The newest line (the tail mark's price) changes with the ticks, not only at rebases.
    assert browser["svg_updates"] >= browser["ticks"] // 2
    assert set(browser["symbols"]) == set(SYMBOLS)
    kernel = kernel_stats(page)
    assert kernel["received"] > 0 and kernel["samples"] > 0 and kernel["dropped"] == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type*='stderr']").count() == 0
    assert page.locator(".jp-OutputArea-output[data-mime-type*='error']").count() == 0
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    result = {"browser": browser, "kernel": kernel}
    (ARTIFACTS / "ui-dashboard-latency.json").write_text(json.dumps(result, indent=2))
    page.locator(".rtstream-chart").first.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"))


def test_the_quickstart_notebook_runs_from_the_ui(lab: LabProcess, context: BrowserContext) -> None:
    """The repository's own quickstart, opened and run in JupyterLab as a user would: its
    Dashboard charts visibly update, every cell runs to the end without an error."""
    notebook = Path(__file__).resolve().parents[2] / "notebooks" / "01-quickstart.ipynb"
    shutil.copy(notebook, Path(lab.root_dir) / "quickstart.ipynb")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = open_lab(context, lab, paint_log=False)
    try:
        page.add_init_script(CHART_PROBE_SCRIPT)
        # A workspace of its own: only this notebook open (not the module's dashboard one).
        page.goto(
            lab.lab_url("reset").replace("/lab?", "/lab/workspaces/qs/tree/quickstart.ipynb?")
        )
        page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
        notebook = page.locator(".jp-NotebookPanel:visible")
        start_cell = notebook.locator(".jp-Cell").filter(has_text="await dashboard.start()")
        # Run up to the cell that shows the Dashboard, and watch it while it is in view
        # (JupyterLab detaches cells scrolled far away; the last cell closes the dashboard).
        start_cell.click()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-above')")
        header = page.locator(".rtstream-chart-header[data-symbol='AAPL'][data-tick-ms]")
        header.wait_for(timeout=60_000)
        first = header.get_attribute("data-tick-ms")
        expect(header).not_to_have_attribute("data-tick-ms", str(first), timeout=30_000)
        expect(page.locator(".rtstream-chart")).to_have_count(5)
        page.locator(".rtstream-chart").first.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "quickstart.png"))
        start_cell.click()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-below')")
        # The last cell closes the stream and prints its final state: the run reached the end.
        last = notebook.locator(".jp-Cell").last.locator(".jp-OutputArea-output")
        expect(last.last).to_contain_text("disconnected", timeout=60_000)
        outputs = notebook.locator(".jp-OutputArea-output")
        assert outputs.locator("xpath=self::*[contains(@data-mime-type, 'err')]").count() == 0
    finally:
        page.close()
