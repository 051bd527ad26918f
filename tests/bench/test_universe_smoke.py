"""The universe benchmark runs end to end (``--universe --smoke``): its JSON has every figure
of the issue 19 table. Benchmarks are not tests: structure only, no timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_universe_smoke_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "universe.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "jupyter_rtstream.bench"),
            *("--universe", "--smoke", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["reference"]["symbols"] == 5
    assert [w["watched"] for w in result["reference"]["windows"]] == [0, 5]
    (size,) = result["sizes"]
    assert size["symbols"] == 100 and "error" not in size, size
    assert size["ready_s"] > 0 and size["warm_s"] >= size["ready_s"]
    assert "rss_per_symbol_kib" in size
    assert [w["watched"] for w in size["windows"]] == [0, 2]
    for window in size["windows"]:
        for key in ("cpu_percent", "us_per_tick", "ticks_per_s", "rss_mib", "p99_ms", "messages"):
            assert key in window, key
        assert window["ticks_per_s"] > 0, "the feed ticks while measured"
    assert size["windows"][0]["messages"] == 0, "nothing watched, nothing received"
    assert "| 100 |" in proc.stdout, "the Markdown table"
