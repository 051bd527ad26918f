"""A scripted in-process rtstream server (tornado) for cases the real server cannot stage.

It speaks the real wire format (frames built from ``jupyter_rtstream.core.messages``), checks
the ``Authorization`` header, and serves ``GET rtstream/api/alerts?since=`` from
``alert_history`` (the REST contract in docs/protocol.md). Tests drive it through
``on_subscribe`` (called with the connection and the decoded request) and ``send``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.ioloop import PeriodicCallback
from tornado.netutil import bind_sockets
from tornado.web import Application, HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler

from jupyter_rtstream.core.codec import decode_client, encode
from jupyter_rtstream.core.messages import (
    Ack,
    AckPayload,
    Alert,
    AlertPayload,
    ConnectionStatus,
    ConnectionStatusPayload,
    Subscribe,
    utc_now,
)


def alert_payload(
    alert_id: int, symbol: str = "AAPL", when: datetime | None = None
) -> AlertPayload:
    return AlertPayload(
        alert_id=alert_id,
        rule_id=1,
        symbol=symbol,
        rule_name="above 100",
        condition="price_above",
        target_value=100.0,
        current_value=100.0 + alert_id,
        severity="high",
        message=f"alert {alert_id}",
        timestamp=when or utc_now(),
    )


def alert_frame(topic: str, seq: int, payload: AlertPayload) -> str:
    return encode(Alert(topic=topic, seq=seq, data=payload))


class FakeServer:
    def __init__(self, token: str = "secret", epoch: str = "e1") -> None:
        self.token = token
        self.epoch = epoch
        self.connections: list[_Socket] = []
        self.requests: list[Any] = []
        self.alert_history: list[AlertPayload] = []
        #: Raw items appended to every history answer (a server that sends bad items).
        self.raw_history: list[Any] = []
        self.alert_queries: list[str] = []
        self.on_subscribe: Callable[[_Socket, Subscribe], None] | None = None
        self.on_open: Callable[[_Socket], None] | None = None
        self.heartbeat = 1.0
        self.alerts_status = 200
        self.port = 0
        self._server: HTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> FakeServer:
        app = Application(
            [
                (r"/rtstream/ws", _Socket, {"fake": self}),
                (r"/rtstream/api/alerts", _Alerts, {"fake": self}),
            ]
        )
        sockets = bind_sockets(0, "127.0.0.1")
        self.port = sockets[0].getsockname()[1]
        self._server = HTTPServer(app)
        self._server.add_sockets(sockets)
        return self

    def check_auth(self, handler: RequestHandler) -> None:
        if handler.request.headers.get("Authorization") != f"token {self.token}":
            raise HTTPError(403)

    def status(self, sock: _Socket) -> str:
        now = utc_now()
        return encode(
            ConnectionStatus(
                data=ConnectionStatusPayload(
                    client_id=sock.client_id,
                    connected_at=now,
                    subscriptions=[],
                    last_heartbeat=now,
                    epoch=self.epoch,
                    heartbeat_interval=self.heartbeat,
                )
            )
        )

    async def stop(self) -> None:
        for sock in list(self.connections):
            sock.close()
        if self._server is not None:
            self._server.stop()
            await self._server.close_all_connections()


class _Socket(WebSocketHandler):
    fake: FakeServer
    count = 0

    def initialize(self, fake: FakeServer) -> None:
        self.fake = fake

    async def get(self, *args: Any, **kwargs: Any) -> None:
        self.fake.check_auth(self)
        await super().get(*args, **kwargs)

    def open(self, *args: Any, **kwargs: Any) -> None:
        _Socket.count += 1
        self.client_id = f"c{_Socket.count}"
        self.fake.connections.append(self)
        self.write_message(self.fake.status(self))
        self.heartbeat = PeriodicCallback(
            lambda: self.write_message(self.fake.status(self)), self.fake.heartbeat * 1000
        )
        self.heartbeat.start()
        if self.fake.on_open is not None:
            self.fake.on_open(self)

    def on_message(self, message: str | bytes) -> None:
        request = decode_client(message)
        self.fake.requests.append(request)
        if isinstance(request, Subscribe) and self.fake.on_subscribe is not None:
            self.fake.on_subscribe(self, request)

    def on_close(self) -> None:
        self.heartbeat.stop()
        if self in self.fake.connections:
            self.fake.connections.remove(self)

    def ack(self, request: Any, topic: str, recovered: bool | None) -> None:
        self.write_message(
            encode(
                Ack(
                    data=AckPayload(
                        request_id=request.request_id,
                        action="subscribe",
                        topic=topic,
                        subscriptions=[topic],
                        recovered=recovered,
                    )
                )
            )
        )

    def send(self, frame: str | bytes) -> None:
        self.write_message(frame, binary=isinstance(frame, bytes))


class _Alerts(RequestHandler):
    def initialize(self, fake: FakeServer) -> None:
        self.fake = fake

    def get(self) -> None:
        self.fake.check_auth(self)
        since = int(self.get_argument("since", "0"))
        self.fake.alert_queries.append(self.request.uri or "")
        if self.fake.alerts_status != 200:
            raise HTTPError(self.fake.alerts_status)
        alerts = [
            json.loads(a.model_dump_json()) for a in self.fake.alert_history if a.alert_id > since
        ] + self.fake.raw_history
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"alerts": alerts}))
