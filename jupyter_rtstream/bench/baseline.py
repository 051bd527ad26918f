"""The raw Tornado baseline: a bare WebSocket server broadcasting with ``write_message``.

``python -m jupyter_rtstream.bench.baseline --port P --rate R --size S [--topics K]``

What a user would write without rtstream: one ``WebSocketHandler`` (``TCP_NODELAY`` on, no
compression, no auth, no protocol), and a loop that, at ``R`` messages per second (paced
exactly like rtstream's synthetic publisher, :class:`~jupyter_rtstream.server.synthetic.
RateSchedule`), builds one JSON text of ``S`` bytes and hands it to every connected client
with ``write_message``: serialized once, framed once per client by Tornado. Messages have
the shape of rtstream's (``"timestamp"`` = publish time, ``"topic"``, ``"seq"`` per topic,
round-robin over ``K`` topics, padding to ``S`` bytes) so the same client measures both.

It prints ``listening <port>`` once it accepts connections and runs until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from tornado.web import Application
from tornado.websocket import WebSocketClosedError, WebSocketHandler

from ..server.synthetic import RateSchedule, synthetic_symbols

CLIENTS: set[BroadcastHandler] = set()


class BroadcastHandler(WebSocketHandler):
    def open(self, *args: Any, **kwargs: Any) -> None:
        self.set_nodelay(True)
        CLIENTS.add(self)

    def on_message(self, message: str | bytes) -> None:
        """Clients send nothing the baseline needs."""

    def on_close(self) -> None:
        CLIENTS.discard(self)


class Broadcaster:
    """Builds one message per due slot and writes it to every client."""

    def __init__(self, rate: float, size: int, topics: int) -> None:
        self.rate = rate
        self.size = size
        self.topics = [f"market_data:{s}" for s in synthetic_symbols(topics)]
        self.seqs = [0] * len(self.topics)
        self._next = 0
        self.published = 0

    def message(self) -> str:
        i = self._next
        self._next = (i + 1) % len(self.topics)
        self.seqs[i] += 1
        stamp = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        head = (
            f'{{"version":"1.0","timestamp":"{stamp}","topic":"{self.topics[i]}",'
            f'"seq":{self.seqs[i]},"message_type":"market_data","data":{{"pad":"'
        )
        pad = max(0, self.size - len(head) - 3)
        return head + "x" * pad + '"}}'

    def publish(self) -> None:
        text = self.message()
        for client in list(CLIENTS):
            try:
                client.write_message(text)
            except WebSocketClosedError:
                CLIENTS.discard(client)
        self.published += 1

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        schedule = RateSchedule(self.rate, loop.time())
        while True:
            n = schedule.due(loop.time())
            for _ in range(n):
                self.publish()
            schedule.done(n)
            await asyncio.sleep(schedule.delay(loop.time()))


async def serve(port: int, rate: float, size: int, topics: int) -> None:
    app = Application([(r"/ws", BroadcastHandler)])
    server = app.listen(port, address="127.0.0.1")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    task = loop.create_task(Broadcaster(rate, size, topics).run())
    print(f"listening {port}", flush=True)
    await stop.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    server.stop()
    for client in list(CLIENTS):
        client.close(1001)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="raw Tornado WebSocket broadcast baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="messages per second")
    parser.add_argument("--size", type=int, default=270, help="bytes per message")
    parser.add_argument("--topics", type=int, default=5, help="topics (round-robin)")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.port, args.rate, args.size, args.topics))


if __name__ == "__main__":
    main()
