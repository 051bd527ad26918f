"""Server discovery: arguments, JUPYTER_RTSTREAM_*, JupyterHub env, running-server files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from jupyter_rtstream.client import DiscoveryError, ServerInfo, discover

ENV_VARS = (
    "JUPYTER_RTSTREAM_URL",
    "JUPYTER_RTSTREAM_TOKEN",
    "JUPYTERHUB_SERVICE_PREFIX",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_SERVICE_URL",
    "JPY_PARENT_PID",
)


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment whose JUPYTER_RUNTIME_DIR is an empty temporary directory."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "runtime"
    path.mkdir()
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(path))
    return path


def write_server_file(runtime: Path, pid: int, port: int, token: str, base_url: str = "/") -> None:
    info = {
        "url": f"http://127.0.0.1:{port}{base_url}",
        "hostname": "127.0.0.1",
        "port": port,
        "sock": "",
        "secure": False,
        "base_url": base_url,
        "token": token,
        "root_dir": "/tmp",
        "password": False,
        "pid": pid,
        "version": "2.21.1",
    }
    (runtime / f"jpserver-{pid}.json").write_text(json.dumps(info))


def test_explicit_arguments_win(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JUPYTER_RTSTREAM_URL", "http://env.example:1/")
    monkeypatch.setenv("JUPYTER_RTSTREAM_TOKEN", "env-token")
    info = discover("http://127.0.0.1:9999", "arg-token")
    assert (info.url, info.token, info.source) == (
        "http://127.0.0.1:9999/",
        "arg-token",
        "arguments",
    )
    assert info.ws_url == "ws://127.0.0.1:9999/rtstream/ws"


def test_explicit_url_borrows_a_token_only_for_the_same_server(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTER_RTSTREAM_URL", "http://127.0.0.1:8888/")
    monkeypatch.setenv("JUPYTER_RTSTREAM_TOKEN", "env-token")
    assert discover("http://127.0.0.1:8888").token == "env-token"
    assert discover("http://other.example:8888/").token is None  # never leaked elsewhere
    write_server_file(runtime_dir, os.getpid(), 7777, "file-token", "/lab/")
    assert discover("http://127.0.0.1:7777/lab").token == "file-token"


def test_environment_variables(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_server_file(runtime_dir, os.getpid(), 7777, "file-token")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTER_RTSTREAM_URL", "https://hub.example/user/bob")
    monkeypatch.setenv("JUPYTER_RTSTREAM_TOKEN", "env-token")
    info = discover()
    assert (info.url, info.token) == ("https://hub.example/user/bob/", "env-token")
    assert info.source == "JUPYTER_RTSTREAM_URL"
    assert info.ws_url == "wss://hub.example/user/bob/rtstream/ws"
    # An explicit token overrides the discovered one.
    assert discover(token="mine").token == "mine"


def test_jupyterhub_environment(runtime_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_server_file(runtime_dir, os.getpid(), 7777, "file-token")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "http://10.0.0.5:41234/user/alice/")
    info = discover()
    assert (info.url, info.token) == ("http://10.0.0.5:41234/user/alice/", "hub-token")
    assert info.headers() == {"Authorization": "token hub-token"}


def test_jupyterhub_without_service_url_falls_back(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-token")
    info = discover()
    assert info.url == "http://127.0.0.1:8888/user/alice/"
    assert "assumed" in info.source
    # With our own server's runtime file at that prefix, its host and port are used.
    write_server_file(runtime_dir, os.getpid(), 7777, "file-token", "/user/alice/")
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    info = discover()
    assert (info.url, info.token) == ("http://127.0.0.1:7777/user/alice/", "hub-token")


def test_running_server_file_matching_the_parent_pid(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two live servers (both pids exist): the kernel's parent is the one to pick.
    write_server_file(runtime_dir, os.getppid(), 8001, "other-token")
    write_server_file(runtime_dir, os.getpid(), 8002, "our-token", "/base/")
    monkeypatch.setenv("JPY_PARENT_PID", str(os.getpid()))
    info = discover()
    assert (info.url, info.token) == ("http://127.0.0.1:8002/base/", "our-token")
    assert f"pid {os.getpid()}" in info.source
    # Without JPY_PARENT_PID two servers are ambiguous: a clear error, no token in it.
    monkeypatch.delenv("JPY_PARENT_PID")
    with pytest.raises(DiscoveryError) as err:
        discover()
    assert "2 servers running" in str(err.value)
    assert "our-token" not in str(err.value) and "other-token" not in str(err.value)


def test_the_only_running_server_is_used(
    runtime_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_server_file(runtime_dir, os.getpid(), 8003, "only-token")
    monkeypatch.setenv("JPY_PARENT_PID", "1")
    info = discover()
    assert (info.url, info.token) == ("http://127.0.0.1:8003/", "only-token")


def test_nothing_found_lists_what_was_tried(runtime_dir: Path) -> None:
    with pytest.raises(DiscoveryError) as err:
        discover()
    message = str(err.value)
    for expected in (
        "arguments",
        "JUPYTER_RTSTREAM_URL",
        "JUPYTERHUB_SERVICE_PREFIX",
        "no running Jupyter server",
    ):
        assert expected in message
    assert len(err.value.tried) == 4


def test_token_stays_out_of_repr_and_str() -> None:
    info = ServerInfo("http://127.0.0.1:8888", "s3cr3t-token")
    assert "s3cr3t-token" not in repr(info)
    assert "s3cr3t-token" not in str(info)


def test_url_normalization() -> None:
    assert ServerInfo("127.0.0.1:8888").url == "http://127.0.0.1:8888/"
    assert ServerInfo("wss://hub.example/user/a/rtstream/ws").url == "https://hub.example/user/a/"
    with pytest.raises(ValueError):
        ServerInfo("ftp://example")
