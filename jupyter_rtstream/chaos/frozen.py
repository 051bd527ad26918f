"""Scenario 3, frozen peers: a process that stops without closing anything.

(a) **client SIGSTOPped**: a client in its own process, subscribed to a few topics, is
    frozen. The server must notice within two heartbeat intervals (its keep-alive pings go
    unanswered), close the connection and release the client's outbox (the status API
    no longer lists it; ``queued_bytes`` back to 0).
(b) **server SIGSTOPped for 5 s**: in-process streams must declare the connection dead within
    two heartbeat intervals (missed heartbeats), and after SIGCONT resume in the same epoch
    with nothing lost or doubled (``recovered: true``, no gap event).
(c) **half-open TCP**: streams behind a proxy that silently stops forwarding both ways (the
    sockets stay open): the streams detect it within two intervals and reconnect (new
    connections pass) with nothing lost; the server closes the stalled connections too.

Detection times are timed goals; closing, releasing and the no-loss resume are invariants.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from typing import Any

from ..client import ConnectionState, Stream
from ..testing import ServerProcess
from ._common import rest, server_config, wait_for
from .proxy import TcpProxy
from .recorder import Recorder
from .result import Result

HEARTBEAT = 1.0
FREEZE = 5.0
#: "Within two heartbeat intervals", with 10 % for timer wake-ups on a busy machine.
DETECT_LIMIT = 2 * HEARTBEAT * 1.1
TOPIC = "market_data:AAPL"

_CLIENT = """
import asyncio, sys
import jupyter_rtstream

async def main():
    stream = await jupyter_rtstream.connect(sys.argv[1], sys.argv[2])
    for symbol in ("AAPL", "MSFT", "GOOG"):
        await stream.subscribe("market_data", symbol)
        await stream.subscribe("technical_indicators", symbol)
    print(stream.client_id, flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


_PING_TIMEOUT = re.compile(r"^\[W (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) .*WebSocket ping timeout")


def ping_timeouts(server: ServerProcess, after: float) -> list[float]:
    """Wall-clock times (epoch s) of the server's "WebSocket ping timeout" log lines after
    ``after``: the moment it judged a peer dead and sent its close frame. (Releasing the
    session follows once the close handshake ends, or after Tornado's 5 s close timeout
    when the peer is frozen and never answers.)"""
    times = []
    for line in server.log_path.read_text(errors="replace").splitlines():
        match = _PING_TIMEOUT.match(line)
        if match:
            when = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            if when >= after:
                times.append(when)
    return times


async def _status(server: ServerProcess) -> dict[str, Any]:
    body: dict[str, Any] = await rest(server, "GET", "rtstream/api/status")
    return body


async def frozen_client(server: ServerProcess, result: Result, patience: float) -> None:
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-c", _CLIENT, server.url, server.token],
        stdout=subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
        client_id = line.decode().strip()
        listed = {c["client_id"] for c in (await _status(server))["clients"]}
        result.goal("frozen client listed before the freeze", client_id in listed, client_id)
        os.kill(proc.pid, signal.SIGSTOP)
        stopped, wall = time.monotonic(), time.time()
        gone_at: float | None = None
        while time.monotonic() - stopped < patience:
            status = await _status(server)
            if client_id not in {c["client_id"] for c in status["clients"]}:
                gone_at = time.monotonic()
                break
            await asyncio.sleep(0.1)
        status = await _status(server)
        released = (gone_at - stopped) if gone_at is not None else float("inf")
        judged = ping_timeouts(server, wall - 0.5)
        detect = (judged[0] - wall) if judged else float("inf")
        queued = status["counters"]["queued_bytes"]
        hub_clients = status["counters"]["clients"]
        result.details["client_sigstop_detect_s"] = round(detect, 2)
        result.details["client_sigstop_released_s"] = round(released, 2)
        result.details["client_sigstop_queued_bytes_after"] = queued
        result.goal(
            "frozen client closed by the server",
            gone_at is not None,
            f"still open after {patience:.0f} s" if gone_at is None else f"{released:.1f} s",
        )
        result.goal(
            "frozen client's outbox released",
            gone_at is not None and queued == 0 and hub_clients == 0,
            f"queued_bytes {queued}, hub clients {hub_clients}",
        )
        result.goal(
            f"frozen client detected within 2 heartbeats ({DETECT_LIMIT:g} s)",
            detect <= DETECT_LIMIT,
            f"{detect:.2f} s",
            timed=True,
        )
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            os.kill(proc.pid, signal.SIGCONT)
        await asyncio.to_thread(proc.wait)


async def _streams(url: str, token: str, n: int) -> tuple[list[Stream], list[Recorder]]:
    streams = [Stream(url, token) for _ in range(n)]
    recorders = [Recorder(s) for s in streams]
    for stream in streams:
        await stream.__aenter__()
        await stream.subscribe("market_data", "AAPL")
    return streams, recorders


def _no_loss(recorders: list[Recorder]) -> tuple[int, int, int]:
    lost = dup = gaps = 0
    for rec in recorders:
        lo, du, _ = rec.continuity(TOPIC)
        lost, dup, gaps = lost + lo, dup + du, gaps + len(rec.gaps)
    return lost, dup, gaps


async def frozen_server(server: ServerProcess, result: Result, clients: int) -> None:
    streams, recorders = await _streams(server.url, server.token, clients)
    assert server.proc is not None
    pid = server.proc.pid
    try:
        await wait_for(lambda: all(r.arrivals for r in recorders), 30)
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            await wait_for(
                lambda: all(s.state is not ConnectionState.CONNECTED for s in streams), FREEZE
            )
            remaining = FREEZE - (time.monotonic() - stopped)
            if remaining > 0:
                await asyncio.sleep(remaining)
        finally:
            os.kill(pid, signal.SIGCONT)
        resumed = time.monotonic()
        detect = [
            (r.first_state_after(stopped, ConnectionState.RECONNECTING) or float("inf")) - stopped
            for r in recorders
        ]
        back = await wait_for(lambda: all(r.first_data_after(resumed) for r in recorders), 60)
        await asyncio.sleep(0.5)  # a little more live data after the resume
        lost, dup, gaps = _no_loss(recorders)
        worst = max(detect)
        result.details["server_sigstop_detect_max_s"] = round(worst, 2)
        result.details["server_sigstop_lost"] = lost
        result.goal("all streams back after SIGCONT", back, f"{clients} streams")
        result.goal(
            "server freeze: 0 lost, 0 duplicated, no gap (same epoch, recovered)",
            lost == 0 and dup == 0 and gaps == 0,
            f"lost {lost}, duplicated {dup}, gap events {gaps}",
        )
        result.goal(
            f"frozen server detected within 2 heartbeats ({DETECT_LIMIT:g} s)",
            worst <= DETECT_LIMIT,
            f"max {worst:.2f} s",
            timed=True,
        )
    finally:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)


async def half_open(server: ServerProcess, result: Result, clients: int, patience: float) -> None:
    proxy = await TcpProxy(server.port).start()
    streams, recorders = await _streams(proxy.url(server.base_url), server.token, clients)
    try:
        await wait_for(lambda: all(r.arrivals for r in recorders), 30)
        before = {c["client_id"] for c in (await _status(server))["clients"]}
        stalled_ids = {s.client_id for s in streams}
        stalled = proxy.stall()
        t0, wall = time.monotonic(), time.time()
        # Each stream's own "reconnecting" (not all at once: the first is back before the last
        # one notices, so "none connected" may never hold).
        await wait_for(
            lambda: all(r.first_state_after(t0, ConnectionState.RECONNECTING) for r in recorders),
            30,
        )
        detect = [
            (r.first_state_after(t0, ConnectionState.RECONNECTING) or float("inf")) - t0
            for r in recorders
        ]
        back = await wait_for(lambda: all(r.first_data_after(t0 + 0.01) for r in recorders), 60)
        server_closed_at: float | None = None
        while time.monotonic() - t0 < patience:
            listed = {c["client_id"] for c in (await _status(server))["clients"]}
            if not (listed & stalled_ids):
                server_closed_at = time.monotonic()
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        lost, dup, gaps = _no_loss(recorders)
        worst = max(detect)
        server_released = (server_closed_at - t0) if server_closed_at else float("inf")
        judged = ping_timeouts(server, wall - 0.5)
        server_detect = (judged[0] - wall) if judged else float("inf")
        result.details["half_open_stalled_connections"] = stalled
        result.details["half_open_client_detect_max_s"] = round(worst, 2)
        result.details["half_open_server_detect_s"] = round(server_detect, 2)
        result.details["half_open_server_released_s"] = round(server_released, 2)
        result.goal(
            "half-open: streams reconnected and resumed, 0 lost, 0 duplicated",
            back and lost == 0 and dup == 0 and gaps == 0 and stalled_ids <= before,
            f"lost {lost}, duplicated {dup}, gap events {gaps}",
        )
        result.goal(
            "half-open: the server closed the stalled connections",
            server_closed_at is not None,
            f"still open after {patience:.0f} s"
            if server_closed_at is None
            else f"{server_released:.1f} s",
        )
        result.goal(
            f"half-open: the server judged its side dead within 2 heartbeats ({DETECT_LIMIT:g} s)",
            server_detect <= DETECT_LIMIT,
            f"{server_detect:.2f} s",
            timed=True,
        )
        result.goal(
            f"half-open detected by clients within 2 heartbeats ({DETECT_LIMIT:g} s)",
            worst <= DETECT_LIMIT,
            f"max {worst:.2f} s",
            timed=True,
        )
    finally:
        await asyncio.gather(*(s.close() for s in streams), return_exceptions=True)
        await proxy.close()


async def run(clients: int = 5, patience: float = 120.0) -> Result:
    """``patience``: how long to wait for the server to close a frozen peer before the
    invariant goal counts as missed."""
    result = Result(
        scenario="3. frozen peers",
        load=f"simulated feed 10 ticks/s per symbol; heartbeat {HEARTBEAT:g} s; 1 client "
        f"process (6 topics) + {clients} streams",
        faults=f"client process SIGSTOP; server SIGSTOP {FREEZE:g} s then SIGCONT; proxy that "
        "silently stops forwarding both ways (half-open)",
    )
    server = ServerProcess(config=server_config(heartbeat_interval=HEARTBEAT))
    await asyncio.to_thread(server.start)
    try:
        await frozen_client(server, result, patience)
        await frozen_server(server, result, clients)
        await half_open(server, result, clients, patience)
    finally:
        await asyncio.to_thread(server.close)
    d = result.details
    result.figure = (
        f"client SIGSTOP: judged dead by the server after {d.get('client_sigstop_detect_s')} s, "
        f"session and outbox released after {d.get('client_sigstop_released_s')} s; "
        f"server SIGSTOP {FREEZE:g} s: detected by clients in max "
        f"{d.get('server_sigstop_detect_max_s')} s, resumed with {d.get('server_sigstop_lost')} "
        f"lost; half-open: clients detect in max {d.get('half_open_client_detect_max_s')} s, "
        f"server judges its side dead after {d.get('half_open_server_detect_s')} s, released "
        f"after {d.get('half_open_server_released_s')} s (Tornado's 5 s close timeout)"
    )
    return result
