"""JupyterHub end to end (issue 10): the feed as a hub-managed service, two users' servers.

Real parts: ``redis-server`` on a free loopback port, ``jupyterhub`` with
configurable-http-proxy (npm, ``tests/hub/node_modules``: ``npm ci`` there), the dummy
authenticator and the local process spawner. Users are created and started through the
hub's REST API with a service token; each user's client (``jupyter_rtstream.connect`` with
the hub URL and that user's API token) streams through the proxy at
``/user/<name>/rtstream/ws``.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jupyterhub  # noqa: F401  (the test extra installs it; a missing hub must fail, not skip)
import pytest
import websockets

import jupyter_rtstream
from jupyter_rtstream.testing import free_port
from jupyter_rtstream.testing_bus import RedisProcess

from .._wait import wait_until

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
CHP = Path(__file__).parent / "node_modules" / ".bin" / "configurable-http-proxy"
USERS = ("alice", "bob")

CONFIG = """
import sys
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.JupyterHub.db_url = "sqlite:///{tmp}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{tmp}/cookie_secret"
c.JupyterHub.pid_file = "{tmp}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "simple"
c.SimpleLocalProcessSpawner.home_dir_template = "{tmp}/home/{{username}}"
c.Spawner.cmd = [sys.executable, "-m", "jupyterhub.singleuser"]
c.Spawner.args = [
    "--allow-root",
    "--ServerApp.jpserver_extensions=jupyter_rtstream=True",
    "--RtstreamApp.bus=redis",
    "--RtstreamApp.redis_url={redis_url}",
    "--RtstreamApp.heartbeat_interval=2",
]
c.Spawner.environment = {{"PYTHONPATH": {root!r}}}
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.JupyterHub.services = [
    {{"name": "rtstream-feed", "command": [sys.executable, "-m", "jupyter_rtstream.feed",
      "--redis-url", "{redis_url}", "--seed", "5", "--history-ticks", "50"],
      "environment": {{"PYTHONPATH": {root!r}}}}},
    {{"name": "test-admin", "api_token": "{admin_token}"}},
]
c.JupyterHub.load_roles = [
    {{"name": "test-admin", "scopes": ["admin:users", "admin:servers", "tokens"],
      "services": ["test-admin"]}},
]
"""


class Hub:
    def __init__(self, redis_url: str) -> None:
        self.tmp = tempfile.mkdtemp(prefix="rtstream-hub-")
        self.port = free_port()
        self.admin_token = secrets.token_hex(16)
        config = CONFIG.format(
            port=self.port,
            hub_port=free_port(),
            proxy_api_port=free_port(),
            chp=str(CHP),
            tmp=self.tmp,
            redis_url=redis_url,
            root=str(ROOT),
            admin_token=self.admin_token,
        )
        (Path(self.tmp) / "jupyterhub_config.py").write_text(config)
        self.log_path = Path(self.tmp) / "hub.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Hub:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", "jupyterhub_config.py"],
            cwd=self.tmp,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        asyncio.run(wait_until(self._up, 60, "the hub API", interval=0.3))
        return self

    def _up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(self.log_path.read_text(errors="replace")[-3000:])
        try:
            self.api("GET", "/hub/api/")
            return True
        except (OSError, urllib.error.URLError):
            return False

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={"Authorization": f"token {token or self.admin_token}"},
        )
        with urllib.request.urlopen(request, timeout=20) as response:
            raw = response.read()
            return json.loads(raw) if raw else None

    def status(self, path: str, token: str) -> int:
        try:
            self.api("GET", path, token=token)
            return 200
        except urllib.error.HTTPError as exc:
            return exc.code

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # the hub stops the users' servers and the feed
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def hub() -> Iterator[tuple[Hub, dict[str, str]]]:
    if not CHP.exists():
        pytest.fail(f"configurable-http-proxy missing: cd {CHP.parents[2]} && npm ci")
    store = RedisProcess().start()
    hub = Hub(store.url)
    try:
        hub.start()
        tokens: dict[str, str] = {}
        for name in USERS:
            hub.api("POST", f"/hub/api/users/{name}")
            hub.api("POST", f"/hub/api/users/{name}/server", {})
            tokens[name] = hub.api("POST", f"/hub/api/users/{name}/tokens", {"note": "test"})[
                "token"
            ]
        for name in USERS:
            asyncio.run(
                wait_until(
                    lambda n=name: hub.status(f"/user/{n}/rtstream/api/status", tokens[n]) == 200,
                    90,
                    f"{name}'s server through the proxy",
                    interval=0.5,
                )
            )
        yield hub, tokens
    finally:
        hub.close()
        store.close()


def test_each_user_streams_through_the_proxy_with_the_same_seqs(hub: Any) -> None:
    h, tokens = hub

    async def scenario() -> dict[str, list[tuple[int, str]]]:
        seen: dict[str, list[tuple[int, str]]] = {}
        streams = []
        for name in USERS:
            stream = await jupyter_rtstream.connect(f"{h.url}/user/{name}/", tokens[name])
            got: list[tuple[int, str]] = []
            stream.on(
                "market_data",
                lambda m, got=got: got.append((m.seq, m.data.model_dump_json())),
                topic="market_data:AAPL",
            )
            await stream.subscribe("market_data", "AAPL")
            seen[name] = got
            streams.append(stream)
        await wait_until(lambda: all(len(v) >= 15 for v in seen.values()), 60)
        assert len({s.epoch for s in streams}) == 1
        for stream in streams:
            await stream.close()
        return seen

    seen = asyncio.run(scenario())
    common = {s for s, _ in seen["alice"]} & {s for s, _ in seen["bob"]}
    assert len(common) >= 10
    assert [m for m in seen["alice"] if m[0] in common] == [
        m for m in seen["bob"] if m[0] in common
    ]


def test_one_users_token_never_opens_anothers_stream_or_rules(hub: Any) -> None:
    h, tokens = hub
    assert h.status("/user/alice/rtstream/api/alerts/rules", tokens["alice"]) == 200
    assert h.status("/user/bob/rtstream/api/alerts/rules", tokens["alice"]) == 403

    async def open_ws(user: str, token: str) -> int:
        url = f"ws://127.0.0.1:{h.port}/user/{user}/rtstream/ws"
        try:
            ws = await websockets.connect(
                url, additional_headers={"Authorization": f"token {token}"}
            )
        except websockets.InvalidStatus as exc:
            return int(exc.response.status_code)
        await ws.close()
        return 101

    assert asyncio.run(open_ws("bob", tokens["alice"])) == 403
    assert asyncio.run(open_ws("bob", tokens["bob"])) == 101
