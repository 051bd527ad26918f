"""The benchmark's client process: M WebSocket clients on one asyncio loop.

Run by the benchmark as ``python -m jupyter_rtstream.bench.clients --url ws://... --clients M
[--token T] [--subscribe BENCH0,BENCH1]`` and driven over stdin/stdout, one line each:

- it connects every client (and subscribes each to every symbol given, waiting for the
  ``ack`` s), then prints ``ready {json}``;
- ``start``: counters reset, the measurement window opens;
- ``stop``: the window closes; it prints ``result {json}`` (delivered messages, latency
  percentiles, gaps and duplicates by ``seq``, disconnects, the client process's CPU);
- ``quit`` (or end of input): it closes every connection and exits.

The clients speak RFC 6455 themselves (a handshake, masked client frames, unmasked server
frames parsed in bulk per ``data_received``, both with :mod:`jupyter_rtstream.core.framing`),
not through a WebSocket library: a library's per-message machinery (futures, queues, a task
switch per message) costs tens of µs per message, and with one process hosting every client
on a 2-core machine that would make the client the bottleneck of the measurement. Pings
are answered, close frames honoured.

Latency is the time a frame's bytes reached the client process (``time.time()`` once per
read) minus the frame's ``timestamp`` (its publish time; client and server share the
machine's clock). Each streamed frame is matched by one regular expression for
``"timestamp":"...","topic":"...","seq":N`` (the field order of the server's messages and
the baseline's), not decoded in full: both systems pay the client the same.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import math
import os
import re
import socket
import sys
import time
from array import array
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from ..core.framing import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, build_frame, parse_header

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_STREAMED = re.compile(rb'"timestamp":"([^"]+)","topic":"([^"]+)","seq":(\d+)')
_ACK = b'"message_type":"ack"'

#: Epoch seconds of each ``YYYY-MM-DDTHH:MM`` seen, so a timestamp costs one dict lookup.
_MINUTES: dict[bytes, float] = {}


def parse_timestamp(ts: bytes) -> float:
    """Epoch seconds of an RFC 3339 UTC timestamp ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``."""
    minute = ts[:16]
    base = _MINUTES.get(minute)
    if base is None:
        base = (
            datetime.strptime(minute.decode(), "%Y-%m-%dT%H:%M")
            .replace(tzinfo=timezone.utc)
            .timestamp()
        )
        _MINUTES[minute] = base
    return base + float(ts[17:].rstrip(b"Z"))


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One masked client frame (RFC 6455 §5.3) with a fresh random mask."""
    return build_frame(opcode, payload, mask=os.urandom(4))


class Stats:
    """Counters shared by every client of the process."""

    def __init__(self) -> None:
        self.recording = False
        self.latencies = array("d")
        self.delivered = 0
        self.gaps = 0
        self.duplicates = 0
        self.disconnects = 0
        self.other_frames = 0
        self.bytes = 0

    def reset(self) -> None:
        self.latencies = array("d")
        self.delivered = self.gaps = self.duplicates = self.disconnects = 0
        self.other_frames = self.bytes = 0


class BenchClient(asyncio.Protocol):
    """One WebSocket client: handshake, subscribe, then count and time what arrives."""

    def __init__(
        self, stats: Stats, host: str, path: str, token: str, subscribe: Sequence[str]
    ) -> None:
        self.stats = stats
        self.host = host
        self.path = path
        self.token = token
        self.subscribe = list(subscribe)
        self.acks = 0
        self.upgraded = False
        self.closed = False
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self._buf = b""
        self._last: dict[bytes, int] = {}
        self._key = base64.b64encode(os.urandom(16))

    # ------------------------------------------------------------------ connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self._key.decode()}",
            "Sec-WebSocket-Version: 13",
        ]
        if self.token:
            lines.append(f"Authorization: token {self.token}")
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed and self.stats.recording:
            self.stats.disconnects += 1
        self.closed = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                self.transport.write(client_frame(OP_CLOSE, (1000).to_bytes(2, "big")))
            self.transport.close()

    def _handshake(self, data: bytes) -> bytes | None:
        data = self._buf + data
        end = data.find(b"\r\n\r\n")
        if end < 0:
            self._buf = data
            return None
        head, rest = data[:end].decode("latin-1"), data[end + 4 :]
        self._buf = b""
        status = head.split("\r\n", 1)[0]
        expected = base64.b64encode(hashlib.sha1(self._key + _GUID).digest()).decode()
        if " 101 " not in status + " " or expected not in head:
            if not self.ready.done():
                self.ready.set_exception(ConnectionError(f"upgrade refused: {status}"))
            assert self.transport is not None
            self.transport.close()
            return None
        self.upgraded = True
        assert self.transport is not None
        for i, symbol in enumerate(self.subscribe):
            request = {
                "message_type": "subscribe",
                "subscription_type": "market_data",
                "symbol": symbol,
                "request_id": f"s{i}",
            }
            self.transport.write(client_frame(OP_TEXT, json.dumps(request).encode()))
        if not self.subscribe and not self.ready.done():
            self.ready.set_result(None)
        return rest

    # ------------------------------------------------------------------ frames

    def data_received(self, data: bytes) -> None:
        if not self.upgraded:
            rest = self._handshake(data)
            if not rest:
                return
            data = rest
        now = time.time()
        if self._buf:
            data = self._buf + data
        stats = self.stats
        n = len(data)
        pos = 0
        while True:
            header = parse_header(data, pos)
            if header is None:
                break
            opcode, start, end, _ = header  # server frames are never masked
            length = end - start
            pos = end
            if opcode == OP_TEXT:
                match = _STREAMED.search(data, start, end)
                if match is None:
                    if data.find(_ACK, start, end) >= 0:
                        self._on_ack()
                    stats.other_frames += 1
                    continue
                topic = match.group(2)
                seq = int(match.group(3))
                last = self._last.get(topic)
                self._last[topic] = seq if last is None or seq > last else last
                if not stats.recording:
                    continue
                if last is not None:
                    if seq <= last:
                        stats.duplicates += 1
                        continue
                    if seq > last + 1:
                        stats.gaps += seq - last - 1
                stats.delivered += 1
                stats.bytes += length
                stats.latencies.append((now - parse_timestamp(match.group(1))) * 1000.0)
            elif opcode == OP_PING and self.transport is not None:  # answer with a pong
                self.transport.write(client_frame(OP_PONG, data[start:end]))
            elif opcode == OP_CLOSE:
                self.close()
                break
        self._buf = data[pos:] if pos < n else b""

    def _on_ack(self) -> None:
        self.acks += 1
        if self.acks >= len(self.subscribe) and not self.ready.done():
            self.ready.set_result(None)


# --------------------------------------------------------------------------- process


def percentile(sorted_values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile of already sorted values (None when empty)."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


#: Histogram buckets per factor e of latency (0.5 % wide): merged percentiles of several
#: client processes (``--histogram``) are exact to that width.
_BUCKETS_PER_E = 200


def histogram(values: Sequence[float]) -> dict[int, int]:
    """Sparse log-bucketed counts of latencies in ms (bucket ``floor(ln(µs) * 200)``)."""
    out: dict[int, int] = {}
    log = math.log
    for v in values:
        key = int(log(max(v * 1000.0, 1.0)) * _BUCKETS_PER_E)
        out[key] = out.get(key, 0) + 1
    return out


def histogram_percentile(hist: dict[int, int], p: float) -> float | None:
    """Nearest-rank percentile (ms) of a merged :func:`histogram`: its bucket's upper edge."""
    total = sum(hist.values())
    if total == 0:
        return None
    rank = max(1, math.ceil(p / 100.0 * total))
    seen = 0
    for key in sorted(hist):
        seen += hist[key]
        if seen >= rank:
            return math.exp((key + 1) / _BUCKETS_PER_E) / 1000.0
    return None  # pragma: no cover - rank <= total


def summarize(stats: Stats, seconds: float, with_histogram: bool = False) -> dict[str, Any]:
    values = sorted(stats.latencies)
    extra: dict[str, Any] = {"histogram": histogram(values)} if with_histogram else {}
    return {
        **extra,
        "seconds": seconds,
        "delivered": stats.delivered,
        "delivered_per_s": stats.delivered / seconds if seconds > 0 else 0.0,
        "bytes_per_s": stats.bytes / seconds if seconds > 0 else 0.0,
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "p999_ms": percentile(values, 99.9),
        "max_ms": float(values[-1]) if values else None,
        "mean_ms": sum(values) / len(values) if values else None,
        "gaps": stats.gaps,
        "duplicates": stats.duplicates,
        "disconnects": stats.disconnects,
        "other_frames": stats.other_frames,
    }


def _emit(kind: str, body: dict[str, Any]) -> None:
    sys.stdout.write(f"{kind} {json.dumps(body)}\n")
    sys.stdout.flush()


async def _connect_all(
    url: str, token: str, count: int, subscribe: list[str], concurrency: int, stats: Stats
) -> tuple[list[BenchClient], list[str]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    clients: list[BenchClient] = []
    errors: list[str] = []

    async def one() -> None:
        async with gate:
            client = BenchClient(stats, f"{host}:{port}", path, token, subscribe)
            try:
                await loop.create_connection(lambda: client, host, port)
                await asyncio.wait_for(client.ready, 30.0)
            except (OSError, ConnectionError, TimeoutError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                client.close()
                return
            clients.append(client)

    await asyncio.gather(*(one() for _ in range(count)))
    return clients, errors


async def run(args: argparse.Namespace) -> None:
    stats = Stats()
    subscribe = [s for s in args.subscribe.split(",") if s]
    started = time.monotonic()
    clients, errors = await _connect_all(
        args.url, args.token, args.clients, subscribe, args.concurrency, stats
    )
    _emit(
        "ready",
        {
            "connected": len(clients),
            "failed": len(errors),
            "errors": errors[:5],
            "connect_seconds": time.monotonic() - started,
        },
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    window_start = 0.0
    cpu_start = 0.0
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if line == "start":
                stats.reset()
                stats.recording = True
                window_start = time.monotonic()
                cpu_start = time.process_time()
                _emit("started", {})
            elif line == "stop":
                stats.recording = False
                seconds = time.monotonic() - window_start
                result = summarize(stats, seconds, args.histogram)
                result["client_cpu_s"] = time.process_time() - cpu_start
                result["connected"] = sum(1 for c in clients if not c.closed)
                _emit("result", result)
            elif line in ("quit", ""):
                break
    finally:
        for client in clients:
            client.close()
        await asyncio.sleep(0.05)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="rtstream benchmark clients (one process)")
    parser.add_argument("--url", required=True, help="ws:// URL of the WebSocket endpoint")
    parser.add_argument("--token", default="", help="Jupyter token (Authorization header)")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--subscribe", default="", help="comma-separated market_data symbols")
    parser.add_argument("--concurrency", type=int, default=50, help="connections in flight")
    parser.add_argument(
        "--histogram",
        action="store_true",
        help="add a latency histogram to the result (several client processes merge theirs)",
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
