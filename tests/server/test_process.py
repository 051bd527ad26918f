"""A real ``jupyter server`` subprocess: shutdown, restart persistence, CSV replay, config."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import websockets

from jupyter_rtstream.testing import ServerProcess


async def _open(server: ServerProcess) -> Any:
    ws = await websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"token {server.token}"}
    )
    hello = json.loads(await ws.recv())
    assert hello["message_type"] == "connection_status"
    return ws


def test_extension_is_enabled_by_installation() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jupyter_server", "extension", "list"],
        capture_output=True,
        text=True,
        check=True,
    )
    text = out.stdout + out.stderr
    assert "jupyter_rtstream" in text
    line = next(line for line in text.splitlines() if "jupyter_rtstream" in line and "OK" in line)
    assert "OK" in line


def test_shutdown_closes_clients_1001_with_spread_retry_after() -> None:
    async def scenario(server: ServerProcess) -> list[Any]:
        clients = [await _open(server) for _ in range(5)]
        await asyncio.get_running_loop().run_in_executor(None, server.stop)
        reasons = []
        for ws in clients:
            await asyncio.wait_for(ws.wait_closed(), 10)
            assert ws.close_code == 1001
            reasons.append(json.loads(ws.close_reason))
        return reasons

    server = ServerProcess().start()
    try:
        reasons = asyncio.run(scenario(server))
    finally:
        server.close()
    assert {r["reason"] for r in reasons} == {"SERVER_SHUTDOWN"}
    delays = [r["retry_after"] for r in reasons]
    assert all(d >= 1.0 for d in delays)
    assert len(set(delays)) > 1, "reconnects are spread, not synchronized"


def test_rules_and_alerts_survive_a_restart() -> None:
    server = ServerProcess(config={"RtstreamApp": {"feed": "none"}}).start()
    try:
        assert (
            server.request_json(
                "POST", "rtstream/api/ticks", {"ticks": [{"symbol": "ABC", "price": 10.0}]}
            )[0]
            == 200
        )
        status, rule = server.request_json(
            "POST",
            "rtstream/api/alerts/rules",
            {
                "rule_name": "ABC up",
                "symbol": "ABC",
                "condition": "price_above",
                "target_value": 11.0,
                "severity": "low",
            },
        )
        assert status == 201
        # A new rule arms on its first tick (below the line), then fires on the crossing.
        ticks = [{"symbol": "ABC", "price": p} for p in (10.5, 12.0)]
        assert server.request_json("POST", "rtstream/api/ticks", {"ticks": ticks})[0] == 200
        first = server.get_json("rtstream/api/alerts")["alerts"]
        assert [a["rule_id"] for a in first] == [rule["rule_id"]]
        server.stop()
        server.start()
        assert server.get_json("rtstream/api/alerts/rules")["rules"] == [rule]
        assert server.get_json("rtstream/api/alerts")["alerts"] == first
        # ABC came from POSTed ticks; its stored rule keeps it a known instrument.
        listed = server.get_json("rtstream/api/instruments")["instruments"]
        assert [i["symbol"] for i in listed] == ["ABC"]
        # After a restart the rule arms again when its symbol ticks.
        ticks = [{"symbol": "ABC", "price": p} for p in (10.0, 12.5)]
        assert server.request_json("POST", "rtstream/api/ticks", {"ticks": ticks})[0] == 200
        later = server.get_json("rtstream/api/alerts")["alerts"]
        assert len(later) == 2 and later[-1]["current_value"] == 12.5
        assert later[-1]["alert_id"] > first[0]["alert_id"]
    finally:
        server.close()


def test_csv_replay_feed(tmp_path: Path) -> None:
    csv = tmp_path / "ticks.csv"
    rows = ["timestamp,symbol,price,volume"] + [
        f"2026-01-05T14:30:{i:02d}Z,{'QQQ' if i % 2 else 'SPY'},{100 + i},{10 * (i + 1)}"
        for i in range(40)
    ]
    csv.write_text("\n".join(rows) + "\n")
    config = {"RtstreamApp": {"feed": "csv", "csv_path": str(csv), "replay_speed": 0.0}}
    with ServerProcess(config=config) as server:
        for _ in range(100):
            status = server.get_json("rtstream/api/status")
            if status["feed"]["ticks"] == 40:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert status["feed"]["kind"] == "csv" and status["feed"]["ticks"] == 40
        symbols = [i["symbol"] for i in server.get_json("rtstream/api/instruments")["instruments"]]
        assert symbols == ["SPY", "QQQ"]
        snap = server.get_json("rtstream/api/instruments/QQQ/snapshot")
        assert snap["price"] == 139.0 and snap["timestamp"] == "2026-01-05T14:30:39Z"


def test_a_broken_csv_row_stops_the_replay_not_the_server(tmp_path: Path) -> None:
    csv = tmp_path / "ticks.csv"
    csv.write_text(
        "timestamp,symbol,price,volume\n"
        "2026-01-05T14:30:00Z,AAA,10.0,100\n"
        "2026-01-05T14:30:01Z,AAA\n"  # short row
        "2026-01-05T14:30:02Z,AAA,11.0,100\n"
    )
    config = {"RtstreamApp": {"feed": "csv", "csv_path": str(csv), "replay_speed": 0.0}}
    server = ServerProcess(config=config).start()
    try:
        for _ in range(100):
            feed = server.get_json("rtstream/api/status")["feed"]
            if not feed["running"]:
                break
            asyncio.run(asyncio.sleep(0.05))
        assert feed["ticks"] == 1 and feed["running"] is False
        assert "ticks.csv:3" in server.log_tail(200)
        started = time.monotonic()
        proc = server.proc
        assert proc is not None
        server.stop(timeout=15)
        assert proc.returncode is not None and time.monotonic() - started < 15
        assert proc.returncode != -9, "a clean shutdown, not a kill"
    finally:
        server.close()
