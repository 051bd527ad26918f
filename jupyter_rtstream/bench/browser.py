"""Real-browser harness and benchmark: JupyterLab with the rtstream extension in Chromium.

``python -m jupyter_rtstream.bench.browser [--tick-rate R ...] [--messages N] [--json PATH]``
starts a real ``jupyter lab`` (with the extension built in ``jupyter_rtstream/labextension``),
drives Debian's Chromium (``/usr/bin/chromium``) with Playwright, opens the market monitor
from the launcher and reports, for each market_data message the monitor painted, the time
from the message's ``timestamp`` to just after the animation frame that painted it (server
and browser share the machine's wall clock), plus the page's long tasks. The UI tests
(``tests/ui``) use the same pieces. Playwright is a test dependency, imported lazily.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..testing import DEFAULT_TEST_CONFIG, ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

CHROMIUM = os.environ.get("RTSTREAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PACKAGE_DIR = Path(__file__).resolve().parent.parent
LABEXTENSION_DIR = PACKAGE_DIR / "labextension"
SYMBOLS = ("AAPL", "MSFT", "GOOG", "AMZN", "NVDA")

# Collects the main thread's long tasks (> 50 ms) from page load on.
LONG_TASKS_SCRIPT = """
window.__rtstreamLongTasks = [];
try {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) window.__rtstreamLongTasks.push(entry.duration);
  }).observe({ type: 'longtask', buffered: true });
} catch (e) {}
"""


class LabProcess(ServerProcess):
    """A ``jupyter lab`` subprocess that loads the extension built in this source tree.

    ``JUPYTER_PATH`` points at a private data dir whose ``labextensions/jupyter-rtstream``
    links to ``jupyter_rtstream/labextension``, so the build under test is the one served,
    whatever else the environment has installed.
    """

    def __init__(self, *, config: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        if not (LABEXTENSION_DIR / "package.json").exists():
            raise RuntimeError(
                f"{LABEXTENSION_DIR} is not built: run `npm run build` in labextension/ "
                "(or `make labextension`)"
            )
        self._data = tempfile.TemporaryDirectory(prefix="rtstream-lab-")
        data = Path(self._data.name)
        (data / "labextensions").mkdir()
        (data / "labextensions" / "jupyter-rtstream").symlink_to(LABEXTENSION_DIR)
        for name in ("settings", "workspaces"):
            (data / name).mkdir()
        path = os.pathsep.join(p for p in (str(data), os.environ.get("JUPYTER_PATH", "")) if p)
        super().__init__(
            config=config or DEFAULT_TEST_CONFIG,
            env={"JUPYTER_PATH": path},
            extra_args=(
                f"--LabApp.user_settings_dir={data / 'settings'}",
                f"--LabApp.workspaces_dir={data / 'workspaces'}",
                "--LabApp.news_url=",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.expose_app_in_browser=True",
            ),
        )

    def command(self) -> list[str]:
        command = super().command()
        return [*command[:1], "-m", "jupyterlab", *command[3:]]

    def lab_url(self, *query: str) -> str:
        return f"{self.url}lab?{'&'.join((f'token={self.token}', *query))}"

    def close(self) -> None:
        super().close()
        self._data.cleanup()


@contextmanager
def chromium() -> Iterator[BrowserContext]:
    from playwright.sync_api import sync_playwright

    with (
        tempfile.TemporaryDirectory(prefix="rtstream-chromium-") as profile,
        sync_playwright() as p,
    ):
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield context
        finally:
            context.close()


def open_lab(context: BrowserContext, lab: LabProcess, *, paint_log: bool = True) -> Page:
    """A page with JupyterLab loaded and the rtstream status bar item present."""
    page: Page = context.new_page()
    page.add_init_script(LONG_TASKS_SCRIPT)
    query = ("rtstream-paint-log=1",) if paint_log else ()
    page.goto(lab.lab_url(*query))
    page.locator(".jp-RtstreamStatus").wait_for(timeout=60_000)
    return page


def open_monitor(page: Page) -> None:
    """Open the market monitor from the launcher, as a user would."""
    page.locator(".jp-LauncherCard", has_text="Market Monitor").first.click(timeout=30_000)
    page.locator(".jp-RtstreamMonitor-table").wait_for(timeout=30_000)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def collect_latency(page: Page, messages: int, timeout: float = 120.0) -> dict[str, Any]:
    """Clear the paint log, wait for ``messages`` painted messages, return the figures."""
    page.evaluate("() => { window.__rtstreamPaintLog.clear(); window.__rtstreamLongTasks = []; }")
    deadline = time.monotonic() + timeout
    while page.evaluate("() => window.__rtstreamPaintLog.total") < messages:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {messages} painted messages after {timeout}s")
        page.wait_for_timeout(250)
    log = page.evaluate("() => window.__rtstreamPaintLog.entries.slice()")
    long_tasks = page.evaluate("() => window.__rtstreamLongTasks.slice()")
    latencies = [float(e["latency_ms"]) for e in log]
    return {
        "painted": len(latencies),
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "mean_ms": statistics.fmean(latencies),
        "max_ms": max(latencies),
        "long_tasks": len(long_tasks),
        "longest_task_ms": max(long_tasks, default=0.0),
        "topics": sorted({str(e["topic"]) for e in log}),
    }


def run(tick_rate: float, messages: int, artifacts: Path | None) -> dict[str, Any]:
    config = {"RtstreamApp": {**DEFAULT_TEST_CONFIG["RtstreamApp"], "tick_rate": tick_rate}}
    lab = LabProcess(config=config)
    lab.start(timeout=120)
    try:
        with chromium() as context:
            page = open_lab(context, lab)
            open_monitor(page)
            page.locator(".jp-RtstreamStatus[data-rtstream-state='connected']").wait_for()
            for symbol in SYMBOLS:
                page.locator(f"tr[data-symbol='{symbol}'][data-seq]").wait_for()
            page.wait_for_timeout(2000)  # warm-up: JIT, first layouts
            result = collect_latency(page, messages)
            result["tick_rate"] = tick_rate
            result["feed_msgs_per_s"] = tick_rate * len(SYMBOLS) * 2
            if artifacts is not None:
                artifacts.mkdir(parents=True, exist_ok=True)
                shot = artifacts / f"monitor-tick-rate-{tick_rate:g}.png"
                page.screenshot(path=str(shot))
                result["screenshot"] = str(shot)
            return result
    finally:
        lab.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jupyter_rtstream.bench.browser")
    parser.add_argument("--tick-rate", type=float, action="append", dest="rates")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--json", type=Path, default=Path("build/ui-artifacts/bench-browser.json"))
    args = parser.parse_args(argv)
    results = []
    for rate in args.rates or [10.0, 200.0]:
        result = run(rate, args.messages, args.json.parent)
        results.append(result)
        print(
            f"tick_rate={rate:g}/symbol (~{result['feed_msgs_per_s']:g} msg/s of market data + "
            f"indicators): {result['painted']} painted, p50 {result['p50_ms']:.1f} ms, "
            f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms, "
            f"long tasks {result['long_tasks']} (longest {result['longest_task_ms']:.0f} ms)",
            flush=True,
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
