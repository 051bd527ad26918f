"""``--bus redis``: the rtstream system with the shared feed over Redis (issue 10).

Per run: a fresh ``redis-server`` (free loopback port, no persistence), the feed service
with the synthetic publisher at the run's publish rate (``python -m jupyter_rtstream.feed
--feed synthetic``), and ``servers`` jupyter servers with ``bus = "redis"``; the clients
connect to the first one, the others relay the same streams alongside (so Redis carries
``servers`` readers). Reported as the ``rtstream`` system; compare with a ``--bus local``
run of the same plan. Latency is end to end: feed publish → Redis → server → client.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis

from ..testing_bus import FeedProcess, RedisProcess
from .publisher import RtstreamSystem, _BenchServer


class RedisBusSystem(RtstreamSystem):
    """Redis + feed service + ``servers`` relaying servers; clients on the first."""

    def __init__(self, topics: int, workdir: str, servers: int = 1) -> None:
        super().__init__(topics, workdir)
        self.servers = max(1, servers)
        self.store: RedisProcess | None = None
        self.feed: FeedProcess | None = None
        self.others: list[_BenchServer] = []

    def _server(self, url: str, index: int) -> _BenchServer:
        runtime = Path(self.workdir) / "runtime"
        runtime.mkdir(exist_ok=True)
        return _BenchServer(
            config={
                "RtstreamApp": {
                    "bus": "redis",
                    "redis_url": url,
                    "analytics_interval": 0.0,
                    "max_connections_per_user": 100_000,
                }
            },
            env={"JUPYTER_RUNTIME_DIR": str(runtime)},
            log_path=Path(self.workdir) / f"rtstream-bus-server-{index}.log",
        )

    def start(self, publish_rate: float) -> None:
        began = time.monotonic()
        self.store = store = RedisProcess().start()
        self.feed = FeedProcess(
            store.url,
            *("--feed", "synthetic", "--synthetic-rate", str(float(publish_rate))),
            *("--synthetic-topics", str(self.topics), "--analytics-interval", "0"),
        ).start()
        client = redis.Redis(port=store.port, decode_responses=True)
        deadline = time.monotonic() + 30
        while client.hlen("rtstream:instruments") < self.topics:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the feed did not publish:\n{self.feed.log()[-2000:]}")
            time.sleep(0.05)
        self.server = self._server(store.url, 0)
        self.server.start()
        self.others = [self._server(store.url, i).start() for i in range(1, self.servers)]
        self.started_in = time.monotonic() - began

    def log_tail(self) -> str:
        feed = self.feed.log()[-2000:] if self.feed is not None else ""
        return super().log_tail() + "\n--- feed ---\n" + feed

    def stop(self) -> None:
        super().stop()
        for server in self.others:
            server.close()
        self.others = []
        if self.feed is not None:
            self.feed.stop()
            self.feed = None
        if self.store is not None:
            self.store.close()
            self.store = None
