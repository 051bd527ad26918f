"""A real TCP proxy for failure tests and the chaos suite: forwards bytes, and can cut,
stall and restore.

- ``cut()``: abort every forwarded connection, both sides (like a dropped link or NAT reset).
- ``stall()``: stop forwarding on the existing connections *silently*: sockets stay open,
  bytes are read and held, nothing arrives (a half-open connection as seen by each side).
  New connections are forwarded normally, so a client that notices can reconnect.
- ``restore()``: forward again (held bytes included).
- ``refusing = True``: new connections are accepted and closed at once (server unreachable).
"""

from __future__ import annotations

import asyncio
import contextlib


class _Pipe:
    def __init__(
        self,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        proxy: TcpProxy,
    ) -> None:
        self.client = client
        self.upstream = upstream
        self.proxy = proxy
        self.gate = asyncio.Event()
        self.gate.set()
        self.closed = False
        self.tasks = [
            asyncio.ensure_future(self._pump(client[0], upstream[1])),
            asyncio.ensure_future(self._pump(upstream[0], client[1])),
        ]

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while not self.closed:
                data = await src.read(65536)
                if not data:
                    break
                await self.gate.wait()
                if self.closed:
                    break
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.gate.set()
        for _, writer in (self.client, self.upstream):
            writer.transport.abort()
        self.proxy.pipes.discard(self)


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.pipes: set[_Pipe] = set()
        self.refusing = False
        self.accepted = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, base_url: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{base_url}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.refusing:
            writer.transport.abort()
            return
        try:
            upstream = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self.pipes.add(_Pipe((reader, writer), upstream, self))

    def cut(self) -> int:
        """Abort every current connection; returns how many were cut."""
        pipes = list(self.pipes)
        for pipe in pipes:
            pipe.close()
        return len(pipes)

    def stall(self) -> int:
        """Stop forwarding on the current connections (they stay open); returns how many."""
        for pipe in self.pipes:
            pipe.gate.clear()
        return len(self.pipes)

    def restore(self) -> None:
        self.refusing = False
        for pipe in list(self.pipes):
            pipe.gate.set()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
