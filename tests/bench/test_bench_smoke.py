"""The benchmark runs end to end (smoke mode). Benchmarks are not tests: no timing asserts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


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


def test_bus_capacity_smoke(tmp_path: Path) -> None:
    """``bench.bus_capacity``: Redis, the feed and two relaying servers; every server relays
    what the feed published and the Redis counters were read."""
    out = tmp_path / "capacity.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "jupyter_rtstream.bench.bus_capacity"),
            *("--servers", "2", "--tick-rate", "10", "--window", "2", "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["servers"] == 2 and row["published_msg_s"] > 0
    assert row["relayed_msg_s_per_server"]["min"] > 0
    assert row["xread_calls_s_per_server"] > 0 and row["redis_cpu_pct"] >= 0
    assert "| 2 | 10 |" in proc.stdout


@pytest.mark.parametrize("peer", ["websockets", "nodews"])
def test_bench_smoke_against_a_peer(tmp_path: Path, peer: str) -> None:
    """Each peer runs end to end beside rtstream: its messages reach the same client with
    contiguous seqs, and the JSON holds rtstream's ratios against it and its versions."""
    if peer == "nodews" and (shutil.which("node") is None or shutil.which("npm") is None):
        pytest.fail("the nodews peer needs Node.js and npm (installed on this machine and CI)")
    out = tmp_path / f"bench-{peer}.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "jupyter_rtstream.bench", "--smoke", "--json", str(out)),
            *("--systems", f"rtstream,{peer}", "--sweep", "400"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["meta"]["systems"] == ["rtstream", peer]
    expected_versions = {"websockets": {"websockets"}, "nodews": {"node", "ws"}}[peer]
    assert set(result["meta"]["versions"]) >= expected_versions
    assert result["baseline"] == []
    runs = result[peer]
    assert {r["phase"] for r in runs} == {"fixed", "sweep"}
    for run in runs:
        assert run["connected"] == 2 and run["failed_connections"] == 0
        assert run["delivered"] > 0 and run["delivered_per_s"] > 0, run
        assert run["gaps"] == 0 and run["duplicates"] == 0, run
        assert run["p99_ms"] is not None and run["server_us_per_msg"] is not None
        # The peers send frames of rtstream's size, so the client pays the same per frame.
        assert abs(run["frame_bytes"] - result["meta"]["frame_bytes"]) <= 8, run
    vs = result["ratios"]["vs"]
    assert set(vs) == {peer}
    assert set(vs[peer]["p99_by_run"]) == {"2@200", "2@400"}
    assert result["saturation"][peer] is not None
    assert peer in proc.stdout  # the printed table has the peer's rows


def test_bench_smoke_with_two_client_processes(tmp_path: Path) -> None:
    """``--client-procs 2`` splits the clients over two processes and merges their answers;
    the sweep says where each system's best was and why it stopped; rows carry the
    client-bound flag."""
    out = tmp_path / "bench-procs.json"
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "jupyter_rtstream.bench", "--smoke", "--json", str(out)),
            *("--clients", "4", "--client-procs", "2", "--sweep", "400,800"),
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["meta"]["client_procs"] == 2
    sat = result["saturation"]
    for system in ("rtstream", "baseline"):
        runs = result[system]
        assert [r["phase"] for r in runs] == ["fixed", "sweep", "sweep"]
        for run in runs:
            assert run["client_procs"] == 2 and run["connected"] == 4
            assert run["delivered"] > 0 and run["gaps"] == 0 and run["duplicates"] == 0
            assert run["p50_ms"] is not None and run["p50_ms"] <= run["p99_ms"]
            assert isinstance(run["client_bound"], bool)
        assert sat[system] == max(r["delivered_per_s"] for r in runs if r["phase"] == "sweep")
        assert sat[f"{system}_at"] in (400.0, 800.0)
        assert isinstance(sat[f"{system}_stopped"], str) and sat[f"{system}_stopped"]


def test_merged_histogram_percentiles_match_the_exact_ones() -> None:
    """Several client processes report latency histograms; percentiles of the merged
    histogram are within one bucket (0.5 %) of the exact nearest-rank percentiles."""
    from jupyter_rtstream.bench.clients import histogram, histogram_percentile, percentile

    values = sorted(0.05 + (i * 7919 % 10007) / 97.0 for i in range(20_000))
    halves = histogram(values[::2]), histogram(values[1::2])
    merged = {k: halves[0].get(k, 0) + halves[1].get(k, 0) for k in {*halves[0], *halves[1]}}
    for p in (50.0, 99.0, 99.9):
        exact = percentile(values, p)
        approx = histogram_percentile(merged, p)
        assert exact is not None and approx is not None
        assert exact <= approx <= exact * 1.0051, (p, exact, approx)
    assert histogram_percentile({}, 50.0) is None
