"""Run a real ``jupyter server`` with jupyter-rtstream for tests and notebook CI.

As a pytest plugin (``-p jupyter_rtstream.testing`` or ``pytest_plugins = [...]`` in your
top-level ``conftest.py``) it offers:

- ``--rtstream-server``: start one server with a *seeded* simulated feed when the session
  starts, before nbval launches any kernel, and export its URL and token as
  ``JUPYTER_RTSTREAM_URL`` / ``JUPYTER_RTSTREAM_TOKEN`` (kernels inherit them, so
  ``await jupyter_rtstream.connect()`` finds it). This is what notebook CI needs: nbval's
  cells are not test functions, so fixtures are never set up for them.
- the session-scoped ``rtstream_server`` fixture for ordinary tests (the same server when
  ``--rtstream-server`` is given, else one started on first use).

Or use :class:`ServerProcess` directly::

    with ServerProcess(config={"RtstreamApp": {"seed": 7}}) as server:
        stream = await jupyter_rtstream.connect(server.url, server.token)
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

DEFAULT_TEST_CONFIG: dict[str, dict[str, Any]] = {
    "RtstreamApp": {
        "seed": 20260105,
        "tick_rate": 10.0,
        "heartbeat_interval": 2.0,
        # An hour of seeded history, one round per second (notebooks/06-research.ipynb
        # studies it through GET rtstream/api/instruments/{symbol}/history).
        "history_ticks": 3600,
        "history_interval": 1.0,
    },
}


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _flatten(config: Mapping[str, Mapping[str, Any]]) -> list[str]:
    # traitlets' command line: containers are repeated flags (List) or key=value (Dict).
    args: list[str] = []
    for section, values in config.items():
        for key, value in values.items():
            if isinstance(value, list | tuple):
                args.extend(f"--{section}.{key}={item}" for item in value)
            elif isinstance(value, dict):
                args.extend(f"--{section}.{key}={k}={v!r}" for k, v in value.items())
            else:
                text = value if isinstance(value, str) else repr(value)
                args.append(f"--{section}.{key}={text}")
    return args


class ServerProcess:
    """A ``jupyter server`` subprocess with the rtstream extension enabled."""

    def __init__(
        self,
        *,
        port: int | None = None,
        token: str | None = None,
        base_url: str = "/",
        config: Mapping[str, Mapping[str, Any]] | None = None,
        extra_args: tuple[str, ...] = (),
        env: Mapping[str, str] | None = None,
        root_dir: str | None = None,
        log_path: str | Path | None = None,
    ) -> None:
        self.port = port or free_port()
        self.token = token if token is not None else secrets.token_hex(16)
        self.base_url = "/" + base_url.strip("/") + "/" if base_url.strip("/") else "/"
        self.config = config if config is not None else DEFAULT_TEST_CONFIG
        self.extra_args = extra_args
        self.env = dict(env or {})
        self._tmp = tempfile.TemporaryDirectory(prefix="rtstream-server-")
        self.root_dir = root_dir or self._tmp.name
        self.log_path = Path(log_path) if log_path else Path(self._tmp.name) / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_url}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.base_url}rtstream/ws"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "jupyter_server",
            "--allow-root",
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--port-retries=0",
            f"--ServerApp.base_url={self.base_url}",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.jpserver_extensions=jupyter_rtstream=True",
            "--ServerApp.jpserver_extensions=jupyter_server_terminals=False",
            *self._db_args(),
            *_flatten(self.config),
            *self.extra_args,
        ]

    def _db_args(self) -> list[str]:
        # A private SQLite file per ServerProcess (kept across stop/start, like a real disk).
        if "db_path" in self.config.get("RtstreamApp", {}):
            return []
        return [f"--RtstreamApp.db_path={Path(self._tmp.name) / 'rtstream.sqlite'}"]

    def start(self, timeout: float = 60.0) -> ServerProcess:
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("this ServerProcess is already running; stop() it first")
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(), stdout=self._log, stderr=subprocess.STDOUT, env=env
        )
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()  # a server that never became ready must not outlive the test
            raise
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"jupyter server exited early:\n{self.log_tail()}")
            try:
                self.get_json("rtstream/api/status", timeout=2.0)
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.2)
        raise TimeoutError(f"jupyter server not ready after {timeout}s:\n{self.log_tail()}")

    def get_json(self, path: str, timeout: float = 10.0) -> Any:
        request = urllib.request.Request(
            self.url + path, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())

    def request_json(
        self, method: str, path: str, body: Any = None, timeout: float = 10.0
    ) -> tuple[int, Any]:
        """Send a JSON request; return (status, decoded body or None). Never raises on 4xx."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 20.0) -> None:
        """Graceful stop (SIGTERM, as Ctrl-C would), then SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if getattr(self, "_log", None) is not None:
            self._log.close()

    def kill(self) -> None:
        """Crash the server (SIGKILL): no close frames, no cleanup."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.stop()
        self._tmp.cleanup()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


# --------------------------------------------------------------------------- pytest plugin

try:
    import pytest
except ImportError:  # pragma: no cover - the plugin is optional
    pytest = None  # type: ignore[assignment]

_ENV_KEYS = ("JUPYTER_RTSTREAM_URL", "JUPYTER_RTSTREAM_TOKEN")


class _SessionServer:
    """One server for a pytest session, with the environment it exported."""

    def __init__(self) -> None:
        self.server = ServerProcess().start()
        self.saved = {key: os.environ.get(key) for key in _ENV_KEYS}
        os.environ["JUPYTER_RTSTREAM_URL"] = self.server.url
        os.environ["JUPYTER_RTSTREAM_TOKEN"] = self.server.token

    def close(self) -> None:
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.server.close()


if pytest is not None:
    _SESSION_KEY = pytest.StashKey[_SessionServer]()

    def pytest_addoption(parser: pytest.Parser) -> None:
        parser.getgroup("jupyter-rtstream").addoption(
            "--rtstream-server",
            action="store_true",
            default=False,
            help="start a seeded jupyter-rtstream server before the session (and any nbval "
            "kernel) and export JUPYTER_RTSTREAM_URL/JUPYTER_RTSTREAM_TOKEN",
        )

    def pytest_sessionstart(session: pytest.Session) -> None:
        if session.config.getoption("rtstream_server", default=False):
            session.stash[_SESSION_KEY] = _SessionServer()

    def pytest_sessionfinish(session: pytest.Session) -> None:
        started = session.stash.get(_SESSION_KEY, None)
        if started is not None:
            started.close()

    @pytest.fixture(scope="session")
    def rtstream_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
        """A seeded jupyter-rtstream server for the whole test session.

        Exports ``JUPYTER_RTSTREAM_URL`` and ``JUPYTER_RTSTREAM_TOKEN`` so kernels started
        afterwards connect to it.
        """
        started = request.session.stash.get(_SESSION_KEY, None)
        if started is not None:
            yield started.server
            return
        own = _SessionServer()
        try:
            yield own.server
        finally:
            own.close()


def listening(port: int) -> bool:
    """Whether something accepts TCP connections on ``127.0.0.1:port`` now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return True
    except OSError:
        return False


async def restart_timed(server: ServerProcess) -> float:
    """Start ``server`` again; return the monotonic time its port first accepted a connection
    (the moment a client could have got in: polled every 5 ms beside the start). Used by the
    rejoin benchmark and the fault suite, which time clients from that moment."""
    listen_at: list[float] = []
    done = threading.Event()

    def poll() -> None:
        while not done.is_set():
            if listening(server.port):
                listen_at.append(time.monotonic())
                return
            time.sleep(0.005)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        await asyncio.to_thread(server.start)
    finally:
        done.set()
        await asyncio.to_thread(poller.join, 5.0)
    return listen_at[0] if listen_at else time.monotonic()
