"""Scenario 5, fuzzing a live server: Hypothesis-generated frames against a real
``jupyter server``, on one connection and spread over many.

Frames: valid requests with a field dropped, replaced by random JSON or added; random JSON;
random text; random bytes (as binary frames, and as text frames, which may not be UTF-8);
deep nesting; huge numbers; lone surrogates (JSON-escaped, and raw, which is not UTF-8);
frames of 64 KiB - 1, 64 KiB and 64 KiB + 1 bytes. The server's rate limit is lifted for the
run (it is tested on its own; here every frame must reach the parser).

Each frame is followed by a sentinel ``ping``; everything the server sends until the
sentinel's ``ack`` is the frame's answer. A frame passes when its answer holds an ``ack``
or a typed ``error`` (an ``ErrorCode``), every message validates against the protocol's
schema, or the connection is closed with the documented code (1003 binary, 1009 too
large). Text frames that are not UTF-8 are refused by Tornado itself, which drops the TCP
connection without a close frame (RFC 6455 asks for 1007): counted and listed as Tornado's.
The server log must show no unhandled exception, and a bystander stream on the same server
must see its market data with nothing lost, doubled or reconnected.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from ..client import Stream
from ..core.errors import ErrorCode
from ..core.messages import server_message_adapter
from ..testing import ServerProcess
from ._common import log_size, server_config, unhandled_exceptions, wait_for
from .recorder import Recorder
from .result import Result

LIMIT = 64 * 1024
SYMBOLS = ["AAPL", "MSFT", "GOOG", "*", "NOPE", ""]
KINDS = ["market_data", "technical_indicators", "analytics", "alerts", "bogus"]
ERROR_CODES = {code.value for code in ErrorCode}
#: Close codes the protocol documents for a refused frame.
DOCUMENTED_CLOSES = {1003: "binary", 1009: "too large"}


@dataclass(frozen=True)
class Fuzz:
    """One frame: its kind, its payload, and how it is sent."""

    kind: str
    payload: str | bytes
    #: bytes sent as a *text* frame (may not be UTF-8).
    raw_text: bool = False

    @property
    def expect(self) -> str:
        if isinstance(self.payload, bytes) and not self.raw_text:
            return "close 1003"
        if isinstance(self.payload, bytes):
            try:
                self.payload.decode("utf-8")
            except UnicodeDecodeError:
                return "tornado abort"
            size = len(self.payload)
        else:
            size = len(self.payload.encode("utf-8", "surrogatepass"))
        return "close 1009" if size > LIMIT else "answer"


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_request(draw: st.DrawFn) -> Fuzz:
    kind = draw(st.sampled_from(["subscribe", "unsubscribe", "ping"]))
    message: dict[str, Any] = {"message_type": kind, "request_id": draw(st.text(max_size=12))}
    if kind != "ping":
        message["subscription_type"] = draw(st.sampled_from(KINDS))
        message["symbol"] = draw(st.sampled_from(SYMBOLS))
        if draw(st.booleans()):
            message["resume_from"] = draw(st.integers(-5, 2**70))
            message["epoch"] = draw(st.text(max_size=20))
    if draw(st.booleans()):
        message["version"] = draw(st.sampled_from(["1.0", "1.9", "2.0", "1", "", "1.0.0"]))
    mutation = draw(st.sampled_from(["none", "drop", "replace", "add"]))
    key = draw(st.sampled_from(sorted(message)))
    if mutation == "drop":
        del message[key]
    elif mutation == "replace":
        message[key] = draw(json_values)
    elif mutation == "add":
        message[draw(st.text(max_size=10))] = draw(json_values)
    return Fuzz(f"request/{mutation}", json.dumps(message))


def _pad(size: int) -> str:
    head = '{"message_type":"ping","request_id":"pad","pad":"'
    return head + "a" * (size - len(head) - 2) + '"}'


frames = st.one_of(
    mutated_request(),
    mutated_request(),
    mutated_request(),
    json_values.map(lambda v: Fuzz("random json", json.dumps(v))),
    st.text(max_size=200).map(lambda t: Fuzz("random text", t)),
    st.binary(max_size=200).map(lambda b: Fuzz("random bytes/text frame", b, raw_text=True)),
    st.binary(max_size=64).map(lambda b: Fuzz("random bytes/binary frame", b)),
    st.integers(50, 30_000).map(lambda d: Fuzz("deep nesting", "[" * d + "]" * d)),
    st.integers(50, 20_000).map(lambda d: Fuzz("deep nesting", '{"a":' * d + "1" + "}" * d)),
    st.integers(300, 20_000).map(
        lambda n: Fuzz(
            "huge number",
            '{"message_type":"subscribe","subscription_type":"market_data","symbol":"AAPL",'
            f'"resume_from":{"9" * n},"epoch":"x"}}',
        )
    ),
    st.sampled_from(["1e999999", "-1e999999", "1" * 5000, "0." + "1" * 5000]).map(
        lambda n: Fuzz("huge number", f'{{"message_type":"ping","request_id":{n}}}')
    ),
    st.sampled_from(["\\ud800", "\\udfff", "a\\ud83d", "\\ud83d\\u0041"]).map(
        lambda s: Fuzz(
            "lone surrogate/escaped",
            f'{{"message_type":"subscribe","subscription_type":"market_data",'
            f'"symbol":"{s}","request_id":"{s}"}}',
        )
    ),
    st.sampled_from(["\ud800", "x\udfffy"]).map(
        lambda s: Fuzz(
            "lone surrogate/raw",
            f'{{"message_type":"ping","request_id":"{s}"}}'.encode("utf-8", "surrogatepass"),
            raw_text=True,
        )
    ),
    st.sampled_from([LIMIT - 1, LIMIT, LIMIT + 1]).map(
        lambda n: Fuzz(f"64 KiB{n - LIMIT:+d}", _pad(n))
    ),
)


class Driver:
    """Sends frames over ``connections`` sockets (round robin) and judges each answer."""

    def __init__(self, server: ServerProcess, connections: int) -> None:
        self.server = server
        self.sockets: list[ClientConnection | None] = [None] * connections
        self.sent = 0
        self.outcomes: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.failures: list[str] = []
        self.error_codes: Counter[str] = Counter()
        self.reconnects = 0
        self.exits = contextlib.ExitStack()

    def _socket(self, index: int) -> ClientConnection:
        ws = self.sockets[index]
        if ws is None:
            ws = self.exits.enter_context(
                connect(
                    self.server.ws_url,
                    additional_headers={"Authorization": f"token {self.server.token}"},
                    compression=None,
                    max_size=4 * 1024 * 1024,
                    open_timeout=30,
                )
            )
            ws.recv(timeout=30)  # connection_status
            self.sockets[index] = ws
        return ws

    def _fail(self, frame: Fuzz, why: str) -> None:
        if len(self.failures) < 50:
            self.failures.append(f"{frame.kind}: {why} [{str(frame.payload)[:80]!r}]")

    def _check(self, text: str | bytes, frame: Fuzz) -> dict[str, Any] | None:
        if isinstance(text, bytes):
            self._fail(frame, "binary frame from the server")
            return None
        try:
            message = server_message_adapter.validate_json(text)
        except ValueError as exc:
            self._fail(frame, f"invalid server message: {exc}"[:200])
            return None
        body: dict[str, Any] = message.model_dump(mode="json")
        if body["message_type"] == "error":
            code = body["data"]["error_code"]
            self.error_codes[code] += 1
            if code not in ERROR_CODES:
                self._fail(frame, f"untyped error {code}")
        return body

    def send(self, frame: Fuzz) -> None:
        index = self.sent % len(self.sockets)
        self.sent += 1
        self.kinds[frame.kind] += 1
        ws = self._socket(index)
        sentinel = f"~sentinel-{self.sent}"
        expect = frame.expect
        answered = False
        try:
            if isinstance(frame.payload, bytes):
                ws.send(frame.payload, text=frame.raw_text)
            else:
                ws.send(frame.payload)
            ws.send(json.dumps({"message_type": "ping", "request_id": sentinel}))
            while True:
                body = self._check(ws.recv(timeout=20), frame)
                if body is None or body["message_type"] not in ("ack", "error"):
                    continue
                if body["data"].get("request_id") == sentinel and body["message_type"] == "ack":
                    break
                answered = True
        except ConnectionClosed as exc:
            self.sockets[index] = None
            self.reconnects += 1
            code = exc.rcvd.code if exc.rcvd is not None else 1006
            outcome = f"close {code}" if exc.rcvd is not None else "tornado abort"
            self.outcomes[outcome] += 1
            if outcome != expect:
                self._fail(frame, f"{outcome}, expected {expect}")
            return
        except TimeoutError:
            self.sockets[index] = None
            self.outcomes["unanswered"] += 1
            self._fail(frame, "no answer within 20 s")
            return
        self.outcomes["answered" if answered else "silent"] += 1
        if expect != "answer":
            self._fail(frame, f"answered, expected {expect}")
        elif not answered:
            self._fail(frame, "no ack or error before the sentinel")

    def run(self, count: int, seed: int) -> None:
        @settings(
            max_examples=count,
            database=None,
            deadline=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        @given(frames)
        def one(frame: Fuzz) -> None:
            self.send(frame)

        one._hypothesis_internal_use_seed = seed  # type: ignore[attr-defined]
        one()

    def close(self) -> None:
        self.exits.close()


async def _fuzz(server: ServerProcess, frames: int, connections: int) -> Driver:
    driver = Driver(server, connections)
    try:
        await asyncio.to_thread(driver.run, frames, connections)
    finally:
        await asyncio.to_thread(driver.close)
    return driver


async def run(frames: int = 10_000, connections: int = 50) -> list[Result]:
    config = server_config(rate_limit=1_000_000.0, rate_burst=1_000_000)
    server = ServerProcess(config=config)
    await asyncio.to_thread(server.start)
    results = []
    try:
        bystander = Stream(server.url, server.token)
        rec = Recorder(bystander)
        await bystander.__aenter__()
        await bystander.subscribe("market_data", "AAPL")
        for conns in (1, connections):
            start = log_size(server)
            began = time.monotonic()
            reconnects = bystander.stats.reconnects
            driver = await _fuzz(server, frames, conns)
            took = time.monotonic() - began
            await wait_for(lambda: len(rec.arrivals) > 0, 10)
            lost, dup, _ = rec.continuity("market_data:AAPL")
            errors = unhandled_exceptions(server, start)
            result = Result(
                scenario=f"5. fuzzing a live server ({conns} connection{'s' if conns > 1 else ''})",
                load=f"{driver.sent} Hypothesis frames in lock-step (each + a sentinel ping) "
                f"over {conns} connection(s), {took:.0f} s; 1 bystander stream",
                faults="mutated requests, random JSON/text/bytes, deep nesting, huge numbers, "
                "lone surrogates, 64 KiB-1/0/+1 frames, binary and non-UTF-8 text frames",
            )
            answered = driver.outcomes["answered"]
            result.figure = (
                f"{driver.sent} frames: {answered} answered (ack/typed error), "
                + ", ".join(
                    f"{n} {k}" for k, n in sorted(driver.outcomes.items()) if k != "answered"
                )
                + f"; {len(driver.failures)} failures; unhandled exceptions in the log "
                f"{len(errors)}; bystander lost {lost}, duplicated {dup}, reconnects "
                f"{bystander.stats.reconnects - reconnects}"
            )
            result.goal(
                "every frame answered (ack, typed error or documented close)",
                not driver.failures and driver.sent >= frames,
                "; ".join(driver.failures[:3]) or f"{driver.sent} sent",
            )
            result.goal(
                "no INTERNAL_ERROR",
                driver.error_codes.get("INTERNAL_ERROR", 0) == 0,
                f"{driver.error_codes.get('INTERNAL_ERROR', 0)}",
            )
            result.goal(
                "no unhandled exception in the server log", not errors, "; ".join(errors[:2])
            )
            result.goal(
                "bystander unaffected (0 lost, 0 duplicated, no reconnect)",
                lost == 0 and dup == 0 and bystander.stats.reconnects == reconnects,
                f"lost {lost}, duplicated {dup}",
            )
            tornado = driver.outcomes.get("tornado abort", 0)
            if tornado:
                result.notes.append(
                    f"{tornado} non-UTF-8 text frames: Tornado drops the TCP connection "
                    "without a close frame (RFC 6455 §8.1 asks for 1007) - Tornado's "
                    "behaviour, not the extension's"
                )
            result.details = {
                "frames": driver.sent,
                "connections": conns,
                "seconds": round(took, 1),
                "outcomes": dict(driver.outcomes),
                "kinds": dict(driver.kinds),
                "error_codes": dict(driver.error_codes),
                "failures": driver.failures,
                "unhandled": errors[:20],
                "client_reconnects": driver.reconnects,
            }
            results.append(result)
        await bystander.close()
    finally:
        await asyncio.to_thread(server.close)
    return results
