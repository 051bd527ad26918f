"""Notebook dashboard benchmark: a ``Dashboard`` in a real JupyterLab notebook, in Chromium.

``python -m jupyter_rtstream.bench.dashboard [--tick-rate R ...] [--ticks N] [--json PATH]``
starts ``jupyter lab`` (the extension built in this tree, see :class:`.browser.LabProcess`),
writes a notebook that connects a stream and displays ``Dashboard(SYMBOLS, stream=stream)``,
opens it in Chromium, runs it and reports, per rate:

- **browser**: for each tick a chart showed, the time from the tick's server ``timestamp``
  to just after the animation frame in which its chart showed it. Each chart's header
  carries the newest tick's timestamp (``data-tick-ms``) and is sent after the chart's
  marks in the same frame; a ``requestAnimationFrame`` loop in the page reads it before
  the frame is painted and a ``MessageChannel`` message posted from there runs after the
  paint (same wall clock: one machine). Ticks superseded within one frame are not sampled.
- **kernel**: ``dashboard.stats()`` (arrival in the kernel to the end of the frame that
  sent the widget update), read from the notebook's output.

The UI test ``tests/ui/test_dashboard.py`` uses the same pieces.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..testing import DEFAULT_TEST_CONFIG
from .browser import SYMBOLS, LabProcess, chromium, open_lab, percentile

if TYPE_CHECKING:
    from playwright.sync_api import Page

NOTEBOOK = "dashboard.ipynb"
STATS_MARK = "RTSTREAM-STATS "
#: Tall enough for the five charts of the dashboard to be on screen at once: the browser
#: skips painting (and JupyterLab's notebook windowing may skip laying out) what is out
#: of view, so a measurement with the charts scrolled away would not include their paint.
VIEWPORT = (1280, 1400)

#: Samples, in every animation frame, the newest tick each chart shows (see module doc).
CHART_PROBE_SCRIPT = """
(() => {
  const log = { entries: [], total: 0, svgUpdates: 0, last: new Map(), paths: new Map() };
  log.clear = () => { log.entries = []; log.total = 0; log.svgUpdates = 0; };
  window.__rtstreamChartLog = log;
  const frame = () => {
    const fresh = [];
    for (const head of document.querySelectorAll('.rtstream-chart-header[data-tick-ms]')) {
      const symbol = head.dataset.symbol;
      const tick = Number(head.dataset.tickMs);
      if (log.last.get(symbol) !== tick) {
        log.last.set(symbol, tick);
        fresh.push([symbol, tick]);
        const chart = head.closest('.rtstream-chart') || head.parentElement.parentElement;
        // The last line drawn: the tail mark's price (the history's changes at rebases only).
        const paths = chart ? chart.querySelectorAll('svg path.line') : [];
        const d = paths.length ? paths[paths.length - 1].getAttribute('d') : null;
        if (d && log.paths.get(symbol) !== d) { log.paths.set(symbol, d); log.svgUpdates++; }
      }
    }
    if (fresh.length) {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        const now = Date.now();
        for (const [symbol, tick] of fresh) {
          log.entries.push({ symbol, tick_ms: tick, latency_ms: now - tick });
          log.total++;
        }
        if (log.entries.length > 20000) log.entries.splice(0, log.entries.length - 20000);
      };
      channel.port2.postMessage(0);
    }
    requestAnimationFrame(frame);
  };
  requestAnimationFrame(frame);
})();
"""


def notebook_source(symbols: Sequence[str]) -> dict[str, Any]:
    """A notebook: connect, show the dashboard; the last cell prints ``stats()`` as JSON."""
    cells = [
        "import json\nimport jupyter_rtstream\n\nstream = await jupyter_rtstream.connect()\n"
        f"dashboard = jupyter_rtstream.Dashboard({list(symbols)!r}, stream=stream)\n"
        "dashboard",
        "await dashboard.start()\nprint('subscribed', stream.subscriptions)",
        "stats = dashboard.stats()\nstats.pop('widgets')\n"
        f"print({STATS_MARK!r} + json.dumps(stats))",
    ]
    return {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"cell-{i}",
                "metadata": {},
                "outputs": [],
                "source": source,
            }
            for i, source in enumerate(cells)
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def dashboard_lab(tick_rate: float = 10.0) -> LabProcess:
    """A LabProcess whose kernels find it, with the dashboard notebook in its root."""
    config = {"RtstreamApp": {**DEFAULT_TEST_CONFIG["RtstreamApp"], "tick_rate": tick_rate}}
    lab = LabProcess(config=config)
    lab.env.update(JUPYTER_RTSTREAM_URL=lab.url, JUPYTER_RTSTREAM_TOKEN=lab.token)
    (Path(lab.root_dir) / NOTEBOOK).write_text(json.dumps(notebook_source(SYMBOLS)))
    return lab


def open_dashboard(page: Page, lab: LabProcess) -> None:
    """Open the notebook, run every cell, wait until every chart shows a tick."""
    page.add_init_script(CHART_PROBE_SCRIPT)
    page.goto(lab.lab_url().replace("/lab?", f"/lab/tree/{NOTEBOOK}?"))
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=60_000)
    page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=60_000)
    page.locator(".jp-Notebook .jp-Cell").first.click()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    for symbol in SYMBOLS:
        page.locator(f".rtstream-chart-header[data-symbol='{symbol}'][data-tick-ms]").wait_for(
            timeout=60_000
        )


def show_charts(page: Page) -> int:
    """Scroll the dashboard's charts into view (top of the notebook panel); return how many
    charts are entirely inside the viewport."""
    page.set_viewport_size({"width": VIEWPORT[0], "height": VIEWPORT[1]})
    page.locator(".rtstream-chart").first.evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(300)
    return int(
        page.evaluate(
            """() => [...document.querySelectorAll('.rtstream-chart')].filter((e) => {
                const r = e.getBoundingClientRect();
                return r.height > 0 && r.top >= 0 && r.bottom <= window.innerHeight;
            }).length"""
        )
    )


def kernel_stats(page: Page, timeout: float = 30.0) -> dict[str, Any]:
    """Run the notebook's last cell again and parse the ``dashboard.stats()`` it prints."""
    page.locator(".jp-Notebook .jp-Cell").last.click()
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-cell')")
    output = page.locator(".jp-Notebook .jp-Cell").last.locator(".jp-OutputArea-output")
    deadline = time.monotonic() + timeout
    previous = ""
    while time.monotonic() < deadline:
        texts = output.all_text_contents()
        text = next((t for t in texts if STATS_MARK in t), "")
        if text and text != previous:
            return dict(json.loads(text.split(STATS_MARK, 1)[1].strip().splitlines()[0]))
        page.wait_for_timeout(200)
    raise TimeoutError("the stats cell printed nothing")


def collect_ticks(page: Page, ticks: int, timeout: float = 180.0) -> dict[str, Any]:
    """Bring the charts into view, clear the probe, wait for ``ticks`` sampled ticks, return
    the browser figures (``charts_in_view``: charts entirely on screen meanwhile)."""
    in_view = show_charts(page)
    page.evaluate("() => { window.__rtstreamChartLog.clear(); window.__rtstreamLongTasks = []; }")
    deadline = time.monotonic() + timeout
    while page.evaluate("() => window.__rtstreamChartLog.total") < ticks:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {ticks} ticks shown after {timeout}s")
        page.wait_for_timeout(250)
    log = page.evaluate("() => window.__rtstreamChartLog.entries.slice()")
    updates = page.evaluate("() => window.__rtstreamChartLog.svgUpdates")
    long_tasks = page.evaluate("() => (window.__rtstreamLongTasks || []).slice()")
    latencies = [float(e["latency_ms"]) for e in log]
    return {
        "charts_in_view": in_view,
        "ticks": len(latencies),
        "svg_updates": int(updates),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
        "long_tasks": len(long_tasks),
        "symbols": sorted({str(e["symbol"]) for e in log}),
    }


def run(tick_rate: float, ticks: int, artifacts: Path | None) -> dict[str, Any]:
    lab = dashboard_lab(tick_rate)
    lab.start(timeout=120)
    try:
        with chromium() as context:
            page = open_lab(context, lab, paint_log=False)
            open_dashboard(page, lab)
            page.wait_for_timeout(3000)  # warm-up: kernel, JIT, first layouts
            kernel_stats(page)
            browser = collect_ticks(page, ticks)
            kernel = kernel_stats(page)
            result = {"tick_rate": tick_rate, "browser": browser, "kernel": kernel}
            if artifacts is not None:
                artifacts.mkdir(parents=True, exist_ok=True)
                show_charts(page)
                shot = artifacts / f"dashboard-tick-rate-{tick_rate:g}.png"
                page.screenshot(path=str(shot))
                result["screenshot"] = str(shot)
            return result
    finally:
        lab.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_rtstream.bench.dashboard")
    parser.add_argument("--tick-rate", type=float, action="append", dest="rates")
    parser.add_argument("--ticks", type=int, default=1000)
    parser.add_argument(
        "--json", type=Path, default=Path("build/ui-artifacts/bench-dashboard.json")
    )
    args = parser.parse_args(argv)
    results = []
    for rate in args.rates or [10.0, 200.0]:
        result = run(rate, args.ticks, args.json.parent)
        results.append(result)
        b, k = result["browser"], result["kernel"]
        print(
            f"tick_rate={rate:g}/symbol: browser {b['ticks']} ticks "
            f"({b['charts_in_view']} charts in view) p50 {b['p50_ms']:.1f} ms "
            f"p99 {b['p99_ms']:.1f} ms max {b['max_ms']:.1f} ms, long tasks {b['long_tasks']}; "
            f"kernel p50 {k['p50_ms']:.1f} ms p99 {k['p99_ms']:.1f} ms "
            f"(received {k['received']}, flushed {k['flushed']}, dropped {k['dropped']})",
            flush=True,
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
