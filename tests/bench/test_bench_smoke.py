"""The benchmark runs end to end (smoke mode). Benchmarks are not tests: no timing asserts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_bench_smoke_produces_both_sections(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "jupyter_rtstream.bench", "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    for system in ("rtstream", "baseline"):
        runs = result[system]
        assert runs, f"no {system} runs"
        for run in runs:
            assert run["delivered_per_s"] > 0, run
            for key in ("clients", "target_rate", "p50_ms", "p99_ms", "p999_ms", "max_ms"):
                assert key in run
            assert "server_us_per_msg" in run
    assert set(result["ratios"]) >= {"saturation_throughput", "p99_10k_100_clients"}


def test_bench_smoke_on_the_redis_bus(tmp_path: Path) -> None:
    """``--bus redis``: a real redis-server, the feed service and two relaying servers."""
    out = tmp_path / "bench-redis.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "jupyter_rtstream.bench", "--smoke", "--json", str(out)),
            *("--systems", "rtstream", "--bus", "redis", "--bus-servers", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["meta"]["bus"] == "redis" and result["meta"]["bus_servers"] == 2
    assert result["rtstream"] and all(r["delivered_per_s"] > 0 for r in result["rtstream"])
    assert all(r["duplicates"] == 0 for r in result["rtstream"])
