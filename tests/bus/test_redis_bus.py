"""One feed service and two ``jupyter server`` processes on a real Redis (issue 10).

Module-scoped parts: ``redis-server`` on a free loopback port, ``python -m
jupyter_rtstream.feed`` and servers A and B with ``bus = "redis"`` (B keeps only 5 messages
per topic, so a client moving to it is served from the stream with XRANGE).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import websockets

from jupyter_rtstream.testing import ServerProcess
from jupyter_rtstream.testing_bus import FeedProcess, RedisProcess

from .._wait import wait_until

pytestmark = pytest.mark.timeout(120)
TOPIC = "market_data:AAPL"


def _config(url: str, **extra: Any) -> dict[str, dict[str, Any]]:
    return {"RtstreamApp": {"bus": "redis", "redis_url": url, "heartbeat_interval": 2.0, **extra}}


@pytest.fixture(scope="module")
def parts() -> Iterator[tuple[RedisProcess, FeedProcess, ServerProcess, ServerProcess]]:
    store = RedisProcess().start()
    feed = FeedProcess(store.url, "--seed", "7", "--tick-rate", "10", "--history-ticks", "50")
    feed.start()
    client = redis.Redis(port=store.port, decode_responses=True)
    asyncio.run(wait_until(lambda: client.get("rtstream:epoch"), 30, "the feed's epoch"))
    a = ServerProcess(config=_config(store.url))
    b = ServerProcess(config=_config(store.url, replay_buffer_size=5, replay_buffer_seconds=0.0))
    try:
        a.start()
        b.start()
        yield store, feed, a, b
    finally:
        for server in (a, b):
            server.close()
        code = feed.stop()
        store.close()
        assert code == 0, feed.log()


class Client:
    """A raw WebSocket client that records every streamed ``(topic, seq, data)``."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.messages: list[tuple[str, int, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.acks: list[dict[str, Any]] = []
        self.epoch = ""
        #: Index in ``messages`` where each connection's messages begin.
        self.starts: list[int] = []
        self.ws: Any = None
        self.closed: tuple[int | None, str | None] | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self, resume_from: int | None = None, epoch: str | None = None) -> None:
        self.closed = None
        self.starts.append(len(self.messages))
        self.ws = await websockets.connect(
            self.server.ws_url,
            additional_headers={"Authorization": f"token {self.server.token}"},
        )
        hello = json.loads(await self.ws.recv())
        self.epoch = hello["data"]["epoch"]
        request: dict[str, Any] = {
            "message_type": "subscribe",
            "subscription_type": "market_data",
            "symbol": "AAPL",
            "request_id": "s",
        }
        if resume_from is not None:
            request.update(resume_from=resume_from, epoch=epoch)
        await self.ws.send(json.dumps(request))
        self._task = asyncio.get_running_loop().create_task(self._read())
        await wait_until(lambda: self.acks, 15, "the subscribe ack")

    async def _read(self) -> None:
        try:
            async for text in self.ws:
                message = json.loads(text)
                kind = message["message_type"]
                if kind == "ack":
                    self.acks.append(message["data"])
                elif kind == "connection_status":
                    self.statuses.append(message["data"])
                elif "seq" in message:
                    data = json.dumps(message["data"], sort_keys=True)
                    self.messages.append((message["topic"], message["seq"], data))
        except websockets.ConnectionClosed:
            pass
        self.closed = (self.ws.close_code, self.ws.close_reason)

    @property
    def last_seq(self) -> int:
        return self.messages[-1][1] if self.messages else self.acks[-1]["seq"]

    async def close(self) -> None:
        await self.ws.close()
        if self._task is not None:
            await self._task


def test_both_servers_relay_identical_messages_with_the_feeds_epoch(parts: Any) -> None:
    store, _feed, a, b = parts
    epoch = redis.Redis(port=store.port, decode_responses=True).get("rtstream:epoch")

    async def scenario() -> tuple[Client, Client]:
        ca, cb = Client(a), Client(b)
        await ca.open()
        await cb.open()
        await wait_until(lambda: len(ca.messages) >= 15 and len(cb.messages) >= 15, 30)
        await ca.close()
        await cb.close()
        return ca, cb

    ca, cb = asyncio.run(scenario())
    assert ca.epoch == cb.epoch == epoch
    common = {m[1] for m in ca.messages} & {m[1] for m in cb.messages}
    assert len(common) >= 10
    assert [m for m in ca.messages if m[1] in common] == [m for m in cb.messages if m[1] in common]
    for client in (ca, cb):
        seqs = [m[1] for m in client.messages]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # contiguous
    for server in (a, b):
        status = server.get_json("rtstream/api/status")
        assert status["feed"]["state"] == "ok" and status["epoch"] == epoch
        instruments = server.get_json("rtstream/api/instruments")["instruments"]
        assert [(i["instrument_id"], i["symbol"]) for i in instruments][:2] == [
            (1, "AAPL"),
            (2, "MSFT"),
        ]
        snap = server.get_json("rtstream/api/instruments/AAPL/snapshot")
        assert snap["symbol"] == "AAPL" and snap["price"] > 0


def test_shared_symbols_are_read_only_private_ones_stay_private(parts: Any) -> None:
    _store, _feed, a, b = parts
    status, body = a.request_json(
        "POST", "rtstream/api/ticks", {"ticks": [{"symbol": "AAPL", "price": 1.0, "volume": 1.0}]}
    )
    assert status == 409 and body["error_code"] == "READ_ONLY_SYMBOL"
    status, _ = a.request_json(
        "POST", "rtstream/api/ticks", {"ticks": [{"symbol": "PRIV", "price": 5.0, "volume": 1.0}]}
    )
    assert status == 200
    assert "PRIV" in {i["symbol"] for i in a.get_json("rtstream/api/instruments")["instruments"]}
    assert "PRIV" not in {
        i["symbol"] for i in b.get_json("rtstream/api/instruments")["instruments"]
    }


def test_a_client_cut_from_a_resumes_on_b_with_zero_loss(parts: Any) -> None:
    _store, _feed, a, b = parts

    async def scenario() -> tuple[Client, Client, int]:
        ca = Client(a)
        await ca.open()
        await wait_until(lambda: len(ca.messages) >= 5, 30)
        await ca.close()
        last = ca.last_seq
        # B keeps 5 messages per topic: let it go well past them before the move.
        await wait_until(
            lambda: (
                next(
                    t["seq"]
                    for t in b.get_json("rtstream/api/status")["topics"]
                    if t["topic"] == TOPIC
                )
                > last + 15
            ),
            30,
            interval=0.2,
        )
        cb = Client(b)
        await cb.open(resume_from=last, epoch=ca.epoch)
        await wait_until(lambda: cb.messages and cb.messages[-1][1] > last + 20, 30)
        await cb.close()
        return ca, cb, last

    _ca, cb, last = asyncio.run(scenario())
    assert cb.acks[0]["recovered"] is True
    seqs = [m[1] for m in cb.messages]
    assert seqs[: len(seqs)] == list(range(last + 1, last + 1 + len(seqs)))
    assert b.get_json("rtstream/api/status")["feed"]["backfilled"] > 0


def test_redis_killed_and_restarted_mid_stream(parts: Any) -> None:
    store, feed, a, b = parts

    async def scenario() -> list[Client]:
        clients = [Client(a), Client(b)]
        for client in clients:
            await client.open()
        await wait_until(lambda: all(len(c.messages) >= 5 for c in clients), 30)
        store.kill()
        for server in (a, b):
            await wait_until(
                lambda s=server: s.get_json("rtstream/api/status")["feed"]["state"] == "degraded",
                30,
                "degraded",
                interval=0.2,
            )
        await wait_until(
            lambda: all(any(s["feed_state"] == "degraded" for s in c.statuses) for c in clients),
            15,
            "feed_state degraded in connection_status",
        )
        assert all(c.closed is None for c in clients), "clients stay connected"
        before = [c.last_seq for c in clients]
        store.start()
        for server in (a, b):
            await wait_until(
                lambda s=server: s.get_json("rtstream/api/status")["feed"]["state"] == "ok",
                30,
                "ok again",
                interval=0.2,
            )
        for client, seen in zip(clients, before, strict=True):
            while client.last_seq < seen + 20:
                if client.closed is not None:  # a gap beyond the stream: announced by 1013
                    code, reason = client.closed
                    assert code == 1013 and "FEED_GAP" in (reason or ""), client.closed
                    await client.open(resume_from=client.last_seq, epoch=client.epoch)
                    assert client.acks[-1]["recovered"] is False
                await asyncio.sleep(0.05)
            await client.close()
        return clients

    clients = asyncio.run(asyncio.wait_for(scenario(), 90))
    for client in clients:
        seqs = [m[1] for m in client.messages]
        assert seqs == sorted(set(seqs)), "no duplicates, never backwards"
        # Within one connection seqs are contiguous; a gap only ever comes with the announced
        # close (1013 FEED_GAP) and a resume that said recovered: false.
        bounds = [*client.starts, len(seqs)]
        for begin, end in itertools.pairwise(bounds):
            part = seqs[begin:end]
            assert part == list(range(part[0], part[0] + len(part))) if part else True
        assert any(s["feed_state"] == "ok" for s in client.statuses[-3:]) or client.acks
    assert feed.proc is not None and feed.proc.poll() is None, "the feed survived"
