"""Scenario 6, wire conformance: what the server writes is parsed by independent clients.

(a) **Pre-built frames.** The extension frames each message once and writes the bytes to the
    socket itself (:func:`jupyter_rtstream.server.wire.wire_bytes`, not Tornado's
    ``write_message``). A small Tornado handler writes frames built that way, with payloads
    of 0, 125, 126, 65,535, 65,536 and 1 MiB bytes and non-ASCII text (2-, 3- and 4-byte
    UTF-8, on the same length boundaries), then closes 1000. They are read by the
    ``websockets`` library (strict: masking, RSV bits, UTF-8, lengths) and by Chromium
    (``/usr/bin/chromium`` through Playwright); every payload must arrive intact.
(b) **The live server.** A real ``jupyter server``'s own frames (connection_status, acks with
    a non-ASCII ``request_id``, snapshots, market data) read by both clients and validated
    against the protocol's schema.
(c) **Autobahn cases** (kosoku runs the Autobahn TestSuite's case files) against the
    extension's endpoint: the cases that apply to a server that does not echo (ping/pong,
    reserved bits and opcodes, control-frame fragmentation, close handshake, invalid UTF-8).
    The server's own JSON messages (its greeting, heartbeats) are set aside before judging a
    case. The WebSocket layer is Tornado's: every case failure is listed as Tornado's.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.web import Application, RequestHandler
from tornado.websocket import WebSocketHandler
from websockets.sync.client import connect

from ..core.messages import server_message_adapter
from ..core.outbox import Frame
from ..server.wire import wire_bytes
from ..testing import ServerProcess, free_port
from ._common import server_config
from .result import Result

MIB = 1 << 20
PAYLOADS: list[tuple[str, str]] = [
    ("0", ""),
    ("125", "a" * 125),
    ("126", "b" * 126),
    ("65535", "c" * 65_535),
    ("65536", "d" * 65_536),
    ("1 MiB", "e" * MIB),
    ("non-ASCII 126 (2-byte)", "é" * 63),
    ("non-ASCII 65536 (3-byte)", "€" * 21_845 + "x"),
    ("non-ASCII mixed", "Ünïcødé \u2013 日本語 ✓ 𝄞 " * 40),
    ("non-ASCII 4-byte 1 MiB", "𝄞" * (MIB // 4)),
]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
NON_ASCII_ID = "ü€𝄞-ping"
SUBSCRIBE_AAPL = '{"message_type":"subscribe","subscription_type":"market_data","symbol":"AAPL"}'


def chromium_available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


class _FrameWriter(WebSocketHandler):
    """Writes PAYLOADS as the extension writes frames (pre-built bytes to the stream)."""

    def open(self, *args: Any, **kwargs: Any) -> None:
        conn = self.ws_connection
        assert conn is not None
        stream = conn.stream
        assert stream is not None
        stream.write(wire_bytes([Frame(text) for _, text in PAYLOADS]))
        self.close(1000, "done")

    def on_message(self, message: str | bytes) -> None:
        pass


class _Silent(WebSocketHandler):
    """Bare Tornado, no extension: the reference an Autobahn failure is attributed by."""

    def on_message(self, message: str | bytes) -> None:
        pass


class _Blank(RequestHandler):
    """A page of the frame server's own origin (Chromium blocks a public page, such as
    about:blank, from opening sockets on loopback: Local Network Access)."""

    def get(self) -> None:
        self.write("<!doctype html><title>frames</title>")


@contextmanager
def frame_server() -> Iterator[str]:
    """A Tornado server on a thread of its own; yields its ws:// URL."""
    port = free_port()
    ready = threading.Event()
    state: dict[str, Any] = {}

    def serve() -> None:
        async def main() -> None:
            server = HTTPServer(
                Application([(r"/frames", _FrameWriter), (r"/silent", _Silent), (r"/", _Blank)])
            )
            server.listen(port, "127.0.0.1")
            state["stop"] = asyncio.Event()
            state["loop"] = asyncio.get_running_loop()
            ready.set()
            await state["stop"].wait()
            server.stop()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    ready.wait(30)
    try:
        yield f"ws://127.0.0.1:{port}/frames"
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(10)


def read_websockets(url: str) -> tuple[list[str], int | None]:
    """Every message until the close, with the ``websockets`` client (no size limit)."""
    got: list[str] = []
    with connect(url, max_size=None, compression=None) as ws:
        for message in ws:
            got.append(message if isinstance(message, str) else message.decode())
        code = ws.close_code
    return got, code


_JS_COLLECT = """
async ([url, first, count]) => await new Promise((resolve) => {
  const ws = new WebSocket(url);
  const got = [];
  ws.onopen = () => { for (const text of first) ws.send(text); };
  ws.onmessage = (event) => {
    got.push(event.data);
    if (count && got.length >= count) ws.close(1000);
  };
  ws.onerror = () => {};
  ws.onclose = (event) => resolve({got, code: event.code, clean: event.wasClean});
  setTimeout(() => resolve({got, code: -1, clean: false}), 60000);
})
"""


def read_chromium(page_url: str, jobs: list[tuple[str, list[str], int]]) -> list[dict[str, Any]]:
    """For each (url, messages to send first, messages to read or 0 for all): what Chromium's
    WebSocket delivered, from a page at ``page_url`` (same host: loopback to loopback)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.goto(page_url)
            return [page.evaluate(_JS_COLLECT, list(job)) for job in jobs]
        finally:
            browser.close()


def _compare(name: str, got: list[str], code: int | None) -> list[str]:
    problems = []
    if code != 1000:
        problems.append(f"{name}: close {code}, expected 1000")
    if len(got) != len(PAYLOADS):
        problems.append(f"{name}: {len(got)} messages, expected {len(PAYLOADS)}")
    for (label, text), received in zip(PAYLOADS, got, strict=False):
        if received != text:
            problems.append(f"{name}: payload {label} differs ({len(received)} chars)")
    return problems


def _live_websockets(server: ServerProcess) -> tuple[list[str], str | None]:
    got: list[str] = []
    with connect(
        server.ws_url,
        additional_headers={"Authorization": f"token {server.token}"},
        max_size=None,
        compression=None,
    ) as ws:
        ws.send(json.dumps({"message_type": "ping", "request_id": NON_ASCII_ID}))
        ws.send(SUBSCRIBE_AAPL)
        ws.send('{"message_type":"ping","request_id":"' + "ï" * 100 + '"}')
        while len(got) < 12:
            message = ws.recv(timeout=30)
            got.append(message if isinstance(message, str) else message.decode())
    return got, None


def _validate(name: str, texts: list[str]) -> tuple[list[str], bool]:
    problems = []
    echoed = False
    for text in texts:
        try:
            message = server_message_adapter.validate_json(text)
        except ValueError as exc:
            problems.append(f"{name}: invalid message {str(exc)[:120]}")
            continue
        if message.message_type == "ack" and message.data.request_id == NON_ASCII_ID:
            echoed = True
    if not echoed:
        problems.append(f"{name}: no ack carrying the non-ASCII request_id")
    return problems, echoed


#: Autobahn case groups that can apply to a server that does not echo.
KOSOKU_CASES = ["2.*", "3.*", "4.*", "5.1", "5.2", "6.*", "7.*"]


def _needs_echo(case: Any) -> bool:
    expected = case.expected or {}
    return any(
        entry and entry[0] in ("message", "binary")
        for outcomes in expected.values()
        for entry in outcomes
    )


def _own_message(entry: Any) -> bool:
    if not entry or entry[0] != "message":
        return False
    try:
        return "message_type" in json.loads(entry[1])
    except (TypeError, ValueError):
        return False


async def autobahn(url: str) -> dict[str, Any]:
    """Run the applicable Autobahn cases against ``url``; what passed and what failed."""
    from kosoku import FailureError, run_fuzzingclient

    try:
        cases = await run_fuzzingclient(url, cases=KOSOKU_CASES, concurrency=8)
    except FailureError as exc:
        cases = exc.results
    ok_close = {"OK", "INFORMATIONAL"}
    applied = passed = 0
    failures: list[str] = []
    skipped: list[str] = []
    failed_ids: list[str] = []
    for case in cases:
        if _needs_echo(case):
            skipped.append(case.case_id)
            continue
        applied += 1
        received = [e for e in (case.received or []) if not _own_message(e)]
        expected = list((case.expected or {}).values())
        behaviour = case.behavior.value in ("OK", "NON-STRICT", "INFORMATIONAL") or any(
            [tuple(e) for e in received] == [tuple(x) for x in outcome] for outcome in expected
        )
        closing = case.behavior_close.value in ok_close
        if behaviour and closing:
            passed += 1
        else:
            failures.append(
                f"{case.case_id} ({case.behavior.value}/{case.behavior_close.value}, "
                f"close {case.remote_close_code}): {case.description.splitlines()[0][:70]}"
            )
            failed_ids.append(case.case_id)
    return {
        "failed_ids": failed_ids,
        "applied": applied,
        "passed": passed,
        "failures": failures,
        "skipped_echo_cases": len(skipped),
    }


async def run(autobahn_cases: bool = True, browser: bool = True) -> Result:
    result = Result(
        scenario="6. wire conformance",
        load="1 connection per check; frames of 0 B to 1 MiB; Autobahn case groups "
        + ", ".join(KOSOKU_CASES),
        faults="none injected: independent parsers (websockets strict, Chromium) and "
        "Autobahn's cases (kosoku 0.1.0) against the server's frames and WebSocket layer",
    )
    problems: list[str] = []
    report: dict[str, Any] | None = None
    server = ServerProcess(config=server_config(heartbeat_interval=30.0, tick_rate=2.0))
    await asyncio.to_thread(server.start)
    try:
        with frame_server() as url:
            # A page of the frame server (loopback): Chromium lets it reach both servers.
            blank = url.replace("ws://", "http://").removesuffix("frames")
            got, code = await asyncio.to_thread(read_websockets, url)
            problems += _compare("websockets", got, code)
            texts, _ = await asyncio.to_thread(_live_websockets, server)
            problems += _validate("live/websockets", texts)[0]
            if browser:
                first = [
                    json.dumps({"message_type": "ping", "request_id": NON_ASCII_ID}),
                    SUBSCRIBE_AAPL,
                ]
                frames_page, live_page = await asyncio.to_thread(
                    read_chromium,
                    blank,
                    [(url, [], 0), (server.ws_url + "?token=" + server.token, first, 6)],
                )
                problems += _compare("chromium", frames_page["got"], frames_page["code"])
                problems += _validate("live/chromium", live_page["got"])[0]
            if autobahn_cases:
                report = await autobahn(server.ws_url + "?token=" + server.token)
                bare = await autobahn(url.removesuffix("frames") + "silent")
                report["bare_tornado_failed_ids"] = bare["failed_ids"]
    finally:
        await asyncio.to_thread(server.close)
    sizes = ", ".join(label for label, _ in PAYLOADS)
    result.goal(
        "pre-built frames parsed intact by websockets"
        + (" and Chromium" if browser else "")
        + " (0/125/126/65,535/65,536 B, 1 MiB, non-ASCII)",
        not [p for p in problems if not p.startswith("live")],
        "; ".join(p for p in problems if not p.startswith("live")),
    )
    result.goal(
        "the live server's frames parse and validate (non-ASCII request_id echoed)",
        not [p for p in problems if p.startswith("live")],
        "; ".join(p for p in problems if p.startswith("live")),
    )
    figure = f"{len(PAYLOADS)} payloads ({sizes}) intact in websockets" + (
        " and Chromium" if browser else ""
    )
    figure += f"; live frames valid: {not [p for p in problems if p.startswith('live')]}"
    if report is not None:
        figure += (
            f"; Autobahn: {report['passed']}/{report['applied']} applicable cases pass "
            f"({report['skipped_echo_cases']} need an echo server, not run)"
        )
        bare_failed = set(report["bare_tornado_failed_ids"])
        ours = [
            f
            for f, i in zip(report["failures"], report["failed_ids"], strict=True)
            if i not in bare_failed
        ]
        tornado = [
            f
            for f, i in zip(report["failures"], report["failed_ids"], strict=True)
            if i in bare_failed
        ]
        figure += f", {len(tornado)} fail on bare Tornado too (Tornado's)"
        result.goal(
            "applicable Autobahn cases pass, except failures bare Tornado shares",
            not ours,
            f"{len(ours)} fail only with the extension: " + "; ".join(ours[:6]),
        )
        if tornado:
            result.notes.append(
                "Autobahn failures that bare Tornado 6.6 shares (its WebSocket layer, not "
                "the extension): " + "; ".join(tornado)
            )
        result.details["autobahn"] = report
    result.figure = figure
    result.details["problems"] = problems
    return result
