"""The systems under test, as subprocesses the benchmark starts, reads and stops.

- :class:`RtstreamSystem`: a real ``jupyter server`` with the extension and
  ``feed = "synthetic"`` (:mod:`jupyter_rtstream.server.synthetic`), no analytics timer.
- The peers (:class:`PeerSystem`), bare broadcasters sending the same messages:
  :class:`BaselineSystem` (raw Tornado ``write_message``), :class:`WebsocketsSystem`
  (``websockets`` + ``broadcast()``) and :class:`NodeWsSystem` (Node.js ``ws``).

All run in their own session (process group), so a Ctrl-C in the terminal reaches only
the benchmark, which then stops them. Server CPU time and RSS come from ``/proc/<pid>``.
"""

from __future__ import annotations

import abc
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ..core.hub import Hub
from ..core.instruments import InstrumentRegistry
from ..server.synthetic import SyntheticPublisher, synthetic_symbols
from ..testing import ServerProcess, free_port

_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU seconds of process ``pid``, all its threads: its CPU-time clock (nanoseconds,
    Linux), else user + system time from ``/proc/<pid>/stat`` (ticks of 1/CLK_TCK, 10 ms:
    ±10 ticks on an 8 s window at 11 % CPU is ±1 µs per message at 10k msg/s)."""
    try:
        # Linux's process CPU clock id: MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED).
        return time.clock_gettime(((~pid) << 3) | 2)
    except (OSError, OverflowError):
        pass
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    # After "pid (comm)": state is field 3, utime field 14, stime field 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def rss_bytes(pid: int) -> int:
    """Resident set size of process ``pid`` (``VmRSS`` of ``/proc/<pid>/status``)."""
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def frame_size(topics: int, seq: int = 10_000) -> int:
    """Bytes of a typical synthetic ``market_data`` frame (built by the real publisher)."""
    hub = Hub()
    publisher = SyntheticPublisher(hub, InstrumentRegistry(), 1.0, topics)
    publisher.publish_one()
    frame = hub.latest(f"market_data:{publisher.symbols[0]}")
    assert frame is not None
    return frame.nbytes + len(str(seq)) - 1


class _BenchServer(ServerProcess):
    """A :class:`ServerProcess` in its own session with no stdin (no Ctrl-C prompt)."""

    def start(self, timeout: float = 60.0) -> _BenchServer:
        env = {**os.environ, **self.env}
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self.wait_ready(timeout)
        return self


class RtstreamSystem:
    """jupyter server + rtstream, synthetic publisher at the run's publish rate."""

    name = "rtstream"

    def __init__(self, topics: int, workdir: str) -> None:
        self.topics = topics
        self.workdir = workdir
        self.subscribe = synthetic_symbols(topics)
        self.server: _BenchServer | None = None
        self.started_in = 0.0

    def start(self, publish_rate: float) -> None:
        runtime = Path(self.workdir) / "runtime"
        runtime.mkdir(exist_ok=True)
        server = _BenchServer(
            config={
                "RtstreamApp": {
                    "feed": "synthetic",
                    "synthetic_rate": float(publish_rate),
                    "synthetic_topics": self.topics,
                    "analytics_interval": 0.0,
                    "history_ticks": 0,
                    # Every benchmark client uses the one server token (one user).
                    "max_connections_per_user": 100_000,
                }
            },
            # Keep the benchmark's servers out of the user's list of running servers.
            env={"JUPYTER_RUNTIME_DIR": str(runtime)},
            log_path=Path(self.workdir) / "rtstream-server.log",
        )
        self.server = server
        began = time.monotonic()
        server.start()
        self.started_in = time.monotonic() - began

    @property
    def pid(self) -> int:
        assert self.server is not None and self.server.proc is not None
        return self.server.proc.pid

    @property
    def ws_url(self) -> str:
        assert self.server is not None
        return self.server.ws_url

    @property
    def token(self) -> str:
        assert self.server is not None
        return self.server.token

    def counters(self) -> dict[str, Any]:
        assert self.server is not None
        status = self.server.get_json("rtstream/api/status", timeout=30.0)
        counters: dict[str, Any] = status["counters"]
        return counters

    def log_tail(self) -> str:
        return self.server.log_tail() if self.server is not None else ""

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.close()


class PeerSystem(abc.ABC):
    """A bare broadcaster in a subprocess that prints ``listening <port>`` when ready.

    The peers take the same ``--port --rate --size --topics`` and send the same messages
    (shape, size, pacing); subclasses say which program runs and which versions it uses.
    """

    name = "peer"

    def __init__(self, topics: int, size: int, workdir: str) -> None:
        self.topics = topics
        self.size = size
        self.workdir = workdir
        self.subscribe: list[str] = []
        self.token = ""
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None
        self.started_in = 0.0
        self._log_path = Path(workdir) / f"{self.name}.log"

    @abc.abstractmethod
    def command(self) -> list[str]:
        """The peer's command line (it reads ``self.port`` etc.)."""

    def versions(self) -> dict[str, str]:
        """Versions of what this system runs on (recorded in the JSON's ``meta``)."""
        return {}

    def start(self, publish_rate: float) -> None:
        self.port = free_port()
        began = time.monotonic()
        args = [f"--port={self.port}", f"--rate={publish_rate}", f"--size={self.size}"]
        with open(self._log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.command(), *args, f"--topics={self.topics}"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("listening"):
            self.stop()
            raise RuntimeError(f"{self.name} did not start: {line!r}\n{self.log_tail()}")
        self.started_in = time.monotonic() - began

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def counters(self) -> dict[str, Any]:
        return {"conflated": 0}

    def log_tail(self) -> str:
        try:
            return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-40:])
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            _terminate(proc)


class BaselineSystem(PeerSystem):
    """The raw Tornado broadcaster (:mod:`jupyter_rtstream.bench.baseline`)."""

    name = "baseline"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "jupyter_rtstream.bench.baseline"]

    def versions(self) -> dict[str, str]:
        import tornado

        return {"tornado": tornado.version}


class WebsocketsSystem(PeerSystem):
    """The ``websockets`` asyncio server with ``broadcast()``
    (:mod:`jupyter_rtstream.bench.peer_websockets`)."""

    name = "websockets"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "jupyter_rtstream.bench.peer_websockets"]

    def versions(self) -> dict[str, str]:
        from importlib.metadata import version

        return {"websockets": version("websockets")}


#: The Node.js peer's directory: ``server.js``, ``package.json`` and ``package-lock.json``.
NODEWS_DIR = Path(__file__).with_name("nodews")


def ensure_nodews(directory: Path = NODEWS_DIR) -> None:
    """``npm ci`` the Node.js peer's lockfile unless its ``node_modules`` is up to date."""
    stamp = directory / "node_modules" / ".package-lock.json"
    lock = directory / "package-lock.json"
    if stamp.exists() and stamp.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise RuntimeError("--systems nodews needs Node.js and npm on PATH")
    subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=directory,
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    stamp.touch()


class NodeWsSystem(PeerSystem):
    """Node.js + ``ws``, ``send`` per client (``nodews/server.js``, ``npm ci`` on first use)."""

    name = "nodews"

    def __init__(self, topics: int, size: int, workdir: str) -> None:
        super().__init__(topics, size, workdir)
        ensure_nodews()

    def command(self) -> list[str]:
        return [shutil.which("node") or "node", str(NODEWS_DIR / "server.js")]

    def versions(self) -> dict[str, str]:
        import json

        node = subprocess.run(
            [self.command()[0], "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
        ws = json.loads((NODEWS_DIR / "node_modules" / "ws" / "package.json").read_text())
        return {"node": node.lstrip("v"), "ws": str(ws["version"])}


System = RtstreamSystem | PeerSystem


def _terminate(proc: subprocess.Popen[Any], timeout: float = 10.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            stream.close()


class ClientProcess:
    """Drives ``python -m jupyter_rtstream.bench.clients`` over its stdin/stdout."""

    def __init__(
        self,
        url: str,
        token: str,
        clients: int,
        subscribe: list[str],
        workdir: str,
        *,
        histogram: bool = False,
    ):
        self._stderr = tempfile.TemporaryFile(dir=workdir)  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter_rtstream.bench.clients",
                f"--url={url}",
                f"--token={token}",
                f"--clients={clients}",
                f"--subscribe={','.join(subscribe)}",
                *(["--histogram"] if histogram else []),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            start_new_session=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        """The JSON body of the next ``kind`` line (other lines are skipped)."""
        import json

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"bench clients: no {kind!r} after {timeout:.0f}s")
            try:
                line = self._lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"bench clients exited:\n{self.stderr_tail()}")
            head, _, body = line.partition(" ")
            if head == kind:
                parsed: dict[str, Any] = json.loads(body) if body.strip() else {}
                return parsed

    def stderr_tail(self) -> str:
        self._stderr.seek(0)
        return "\n".join(self._stderr.read().decode(errors="replace").splitlines()[-20:])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(10.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _terminate(self.proc)
        self._stderr.close()


class ClientGroup:
    """``procs`` client processes sharing ``clients`` connections, driven as one: commands
    go to every process, answers are merged (counts summed, latency percentiles from the
    merged histograms, ``client_cpu_percent`` of the busiest process)."""

    def __init__(
        self,
        url: str,
        token: str,
        clients: int,
        subscribe: list[str],
        workdir: str,
        procs: int = 1,
    ) -> None:
        procs = max(1, min(procs, clients))
        shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
        self.procs: list[ClientProcess] = []
        try:
            for share in shares:
                self.procs.append(
                    ClientProcess(url, token, share, subscribe, workdir, histogram=procs > 1)
                )
        except BaseException:
            self.close()
            raise

    def send(self, line: str) -> None:
        for proc in self.procs:
            proc.send(line)

    def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        answers = [proc.expect(kind, timeout) for proc in self.procs]
        if len(answers) == 1:
            answer = answers[0]
            if kind == "result" and answer.get("seconds"):
                answer["client_cpu_percent"] = 100.0 * answer["client_cpu_s"] / answer["seconds"]
            return answer
        if kind == "ready":
            return {
                "connected": sum(a["connected"] for a in answers),
                "failed": sum(a["failed"] for a in answers),
                "errors": [e for a in answers for e in a["errors"]][:5],
                "connect_seconds": max(a["connect_seconds"] for a in answers),
            }
        if kind == "result":
            return merge_results(answers)
        return answers[0]

    def close(self) -> None:
        for proc in self.procs:
            proc.close()


def merge_results(answers: list[dict[str, Any]]) -> dict[str, Any]:
    """One ``result`` from those of several client processes (each with a histogram)."""
    from .clients import histogram_percentile

    hist: dict[int, int] = {}
    for answer in answers:
        for key, count in answer["histogram"].items():
            hist[int(key)] = hist.get(int(key), 0) + count
    seconds = max(a["seconds"] for a in answers)
    delivered = sum(a["delivered"] for a in answers)
    means = [(a["mean_ms"], a["delivered"]) for a in answers if a["mean_ms"] is not None]
    maxes = [a["max_ms"] for a in answers if a["max_ms"] is not None]
    return {
        "seconds": seconds,
        "delivered": delivered,
        "delivered_per_s": delivered / seconds if seconds > 0 else 0.0,
        "bytes_per_s": sum(a["bytes_per_s"] for a in answers),
        "p50_ms": histogram_percentile(hist, 50),
        "p99_ms": histogram_percentile(hist, 99),
        "p999_ms": histogram_percentile(hist, 99.9),
        "max_ms": max(maxes) if maxes else None,
        "mean_ms": sum(m * n for m, n in means) / delivered if means and delivered else None,
        **{k: sum(a[k] for a in answers) for k in ("gaps", "duplicates", "disconnects")},
        "other_frames": sum(a["other_frames"] for a in answers),
        "client_cpu_s": sum(a["client_cpu_s"] for a in answers),
        "client_cpu_percent": max(
            100.0 * a["client_cpu_s"] / a["seconds"] if a["seconds"] else 0.0 for a in answers
        ),
        "connected": sum(a["connected"] for a in answers),
    }
