"""Real parts for the Redis bus tests and benchmark: ``redis-server`` and the feed service.

:class:`RedisProcess` runs Debian's ``redis-server`` on a free loopback port with no
persistence in a temporary directory; :class:`FeedProcess` runs ``python -m
jupyter_rtstream.feed`` against it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from .testing import free_port


class RedisProcess:
    """``redis-server`` on a free loopback port, no persistence, in a temporary dir."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="rtstream-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        log = open(Path(self.dir) / "redis.log", "ab")  # noqa: SIM115 - child keeps it
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)

    def kill(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class FeedProcess:
    """``python -m jupyter_rtstream.feed`` against ``url``."""

    def __init__(self, url: str, *args: str) -> None:
        self.url = url
        self.args = args
        self.log_path = Path(tempfile.mkdtemp(prefix="rtstream-feed-")) / "feed.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FeedProcess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter_rtstream.feed", "--redis-url", self.url, *self.args],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        return self

    def stop(self, timeout: float = 20.0) -> int:
        proc, self.proc = self.proc, None
        code = 0
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self._log.close()
        return code

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
