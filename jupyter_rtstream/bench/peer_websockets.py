"""The Python ``websockets`` peer: its asyncio server broadcasting with ``broadcast()``.

``python -m jupyter_rtstream.bench.peer_websockets --port P --rate R --size S [--topics K]``

What a performance-minded Python user picks: the ``websockets`` library's asyncio server
(``compression=None``, ``TCP_NODELAY`` on every connection, no auth, no protocol) and
``websockets.asyncio.server.broadcast``, which frames the message and writes it to every open
connection's transport without awaiting (a connection that cannot keep up is skipped, not
waited for). Messages, pacing and topics are the raw Tornado baseline's
(:class:`~jupyter_rtstream.bench.baseline.Broadcaster`), so the same client measures both.

It prints ``listening <port>`` once it accepts connections and runs until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection, broadcast, serve

from .baseline import Broadcaster


class WebsocketsBroadcaster(Broadcaster):
    """The baseline's messages and pacing, written with ``websockets``' ``broadcast()``."""

    def __init__(self, rate: float, size: int, topics: int) -> None:
        super().__init__(rate, size, topics)
        self.connections: set[ServerConnection] = set()

    def publish(self) -> None:
        broadcast(self.connections, self.message())
        self.published += 1

    async def handler(self, connection: ServerConnection) -> None:
        sock = connection.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connections.add(connection)
        try:
            async for _ in connection:  # clients send nothing the peer needs
                pass
        finally:
            self.connections.discard(connection)


async def run_server(port: int, rate: float, size: int, topics: int) -> None:
    broadcaster = WebsocketsBroadcaster(rate, size, topics)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        broadcaster.handler,
        "127.0.0.1",
        port,
        compression=None,
        max_queue=None,
        ping_interval=None,
    ):
        task = loop.create_task(broadcaster.run())
        print(f"listening {port}", flush=True)
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="websockets broadcast() peer")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, required=True, help="messages per second")
    parser.add_argument("--size", type=int, default=270, help="bytes per message")
    parser.add_argument("--topics", type=int, default=5, help="topics (round-robin)")
    args = parser.parse_args(argv)
    asyncio.run(run_server(args.port, args.rate, args.size, args.topics))


if __name__ == "__main__":
    main()
