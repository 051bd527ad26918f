"""What the runner reads from a refused upgrade: the status and a ``Retry-After`` header,
classified by the policy (a real Tornado server answering the WebSocket path with HTTP
errors; the waits are slept on a fake clock)."""

from __future__ import annotations

import asyncio
import random

from tornado.web import Application, RequestHandler

from jupyter_rtstream.client import ConnectionState, Stream
from jupyter_rtstream.client.discovery import ServerInfo
from jupyter_rtstream.testing import free_port

from ._helpers import run, wait_until

ANSWERS = [(503, "7"), (502, None), (429, None), (503, None), (404, None)]


class Top(random.Random):
    def uniform(self, a: float, b: float) -> float:
        return b


class Refuse(RequestHandler):
    def get(self) -> None:
        status, retry_after = ANSWERS[min(self.application.settings["count"], len(ANSWERS) - 1)]
        self.application.settings["count"] += 1
        self.set_status(status)
        if retry_after is not None:
            self.set_header("Retry-After", retry_after)
        self.finish("no")


def test_http_answers_and_retry_after_drive_the_waits() -> None:
    async def scenario() -> None:
        port = free_port()
        app = Application([(r"/rtstream/ws", Refuse)], count=0)
        http = app.listen(port, "127.0.0.1")
        stream = Stream(server=ServerInfo(f"http://127.0.0.1:{port}/", "t"), rng=Top())
        slept: list[float] = []
        texts: list[str] = []
        stream.on("state", lambda change: texts.append(change.status_text))

        async def fake_sleep(delay: float) -> None:
            slept.append(delay)
            await asyncio.sleep(0)

        stream._sleep = fake_sleep
        stream.start()
        await wait_until(lambda: stream.state is ConnectionState.DISCONNECTED, what="404")
        http.stop()
        # 503 + Retry-After: overload, at least 7 s; 502: a starting proxy, quick; 429:
        # overload (level 1: up to 1 s); 503 without Retry-After: quick again; 404: final.
        assert slept == [7.0, 1.0, 1.0, 1.0]
        assert texts == [
            "server busy (HTTP 503), retrying in 7 s",
            "server starting (HTTP 502), retrying",
            "server busy (HTTP 429), retrying",
            "server starting (HTTP 503), retrying",
            "refused: 404",
        ]
        assert stream.status_text == "refused: 404"
        await stream.close()

    run(scenario())
