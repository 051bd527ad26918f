"""Find the Jupyter server (base URL and token) to stream from.

Order, first match wins (:func:`discover`):

1. explicit ``url`` (and ``token``) arguments;
2. ``JUPYTER_RTSTREAM_URL`` / ``JUPYTER_RTSTREAM_TOKEN`` (what notebook CI exports);
3. the JupyterHub single-user environment: ``JUPYTERHUB_SERVICE_PREFIX`` +
   ``JUPYTERHUB_API_TOKEN``, host from ``JUPYTERHUB_SERVICE_URL`` (else the running-server
   file of our server, else ``http://127.0.0.1:8888``);
4. jupyter_server's running-server files (``jpserver-*.json`` via
   ``list_running_servers()``): the one whose ``pid`` is ``JPY_PARENT_PID`` (the kernel's
   server), else the only one.

An explicit ``token`` always wins; an explicit ``url`` without a token borrows the token of
a later source only when that source names the *same* URL (a token is never sent to another
server). Tokens travel in the ``Authorization: token ...`` header and are kept out of
``repr()`` and logs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import DiscoveryError

_WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::", "*"})
HUB_FALLBACK_HOST = "http://127.0.0.1:8888"

#: Returns the running servers' info dicts (``jpserver-*.json`` contents).
ServerLister = Callable[[], Iterable[Mapping[str, Any]]]


@dataclass(frozen=True)
class ServerInfo:
    """Where to connect: a Jupyter server base URL, its token and where they came from."""

    url: str
    token: str | None = field(default=None, repr=False)
    source: str = "arguments"

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", normalize_url(self.url))

    @property
    def ws_url(self) -> str:
        """The protocol endpoint, ``ws(s)://host/base/rtstream/ws``."""
        scheme, rest = self.url.split(":", 1)
        return ("wss" if scheme == "https" else "ws") + ":" + rest + "rtstream/ws"

    def api_url(self, path: str) -> str:
        return self.url + path.lstrip("/")

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"} if self.token else {}

    def __str__(self) -> str:
        return f"{self.url} (from {self.source}, token {'set' if self.token else 'none'})"


def normalize_url(url: str) -> str:
    """``http(s)://host[:port]/base/`` with a trailing slash; ``ws(s)://`` is accepted too."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme.lower(), parts.scheme.lower())
    if scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}; use http(s)://")
    if not parts.netloc:
        raise ValueError(f"URL {url!r} has no host")
    path = parts.path or "/"
    if path.endswith("/rtstream/ws"):
        path = path[: -len("rtstream/ws")]
    if not path.endswith("/"):
        path += "/"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


def _same_url(a: str, b: str) -> bool:
    try:
        return normalize_url(a) == normalize_url(b)
    except ValueError:
        return False


def _default_lister() -> Iterable[Mapping[str, Any]]:
    # Imported here: jupyter_server is heavy and only this fallback needs it.
    from jupyter_server.serverapp import list_running_servers

    return list(list_running_servers())


def _server_url(info: Mapping[str, Any]) -> str | None:
    """Connectable base URL of a running-server file (None for Unix-socket servers)."""
    if info.get("sock"):
        return None
    url = info.get("url")
    hostname = str(info.get("hostname", ""))
    port = info.get("port")
    if hostname in _WILDCARD_HOSTS and port:
        # Bound to every interface: loopback always reaches it from a local kernel.
        scheme = "https" if info.get("secure") else "http"
        return f"{scheme}://127.0.0.1:{port}{info.get('base_url') or '/'}"
    return str(url) if url else None


class _Discovery:
    def __init__(
        self,
        environ: Mapping[str, str],
        lister: ServerLister,
    ) -> None:
        self.env = environ
        self.lister = lister
        self.tried: list[str] = []
        self._servers: list[Mapping[str, Any]] | None = None
        self._servers_error: str | None = None

    # ------------------------------------------------------------------ sources

    def from_env(self) -> ServerInfo | None:
        url = self.env.get("JUPYTER_RTSTREAM_URL", "").strip()
        token = self.env.get("JUPYTER_RTSTREAM_TOKEN") or None
        if not url:
            note = " (JUPYTER_RTSTREAM_TOKEN is set but is unused without it)" if token else ""
            self.tried.append(f"JUPYTER_RTSTREAM_URL: not set{note}")
            return None
        return ServerInfo(url, token, "JUPYTER_RTSTREAM_URL")

    def from_hub(self) -> ServerInfo | None:
        prefix = self.env.get("JUPYTERHUB_SERVICE_PREFIX", "").strip()
        token = self.env.get("JUPYTERHUB_API_TOKEN") or None
        if not prefix:
            self.tried.append("JupyterHub: JUPYTERHUB_SERVICE_PREFIX not set")
            return None
        prefix = "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"
        service_url = self.env.get("JUPYTERHUB_SERVICE_URL", "").strip()
        if service_url:
            parts = urlsplit(service_url)
            host, source = f"{parts.scheme}://{parts.netloc}", "JupyterHub environment"
        else:
            own = self.own_server()
            if own is not None and (_server_url(own) or "").endswith(prefix):
                host = (_server_url(own) or "")[: -len(prefix)]
                source = "JupyterHub environment + running-server file"
            else:
                host = HUB_FALLBACK_HOST
                source = f"JupyterHub environment (no JUPYTERHUB_SERVICE_URL; assumed {host})"
        return ServerInfo(host + prefix, token, source)

    def from_runtime_files(self) -> ServerInfo | None:
        servers = self.servers()
        if self._servers_error is not None:
            self.tried.append(f"running-server files: {self._servers_error}")
            return None
        chosen = self.own_server()
        if chosen is None:
            if not servers:
                self.tried.append("running-server files: no running Jupyter server found")
            else:
                urls = ", ".join(f"{_server_url(s)} (pid {s.get('pid')})" for s in servers[:5])
                parent = self.env.get("JPY_PARENT_PID", "<not set>")
                self.tried.append(
                    f"running-server files: {len(servers)} servers running ({urls}) and none "
                    f"has pid == JPY_PARENT_PID ({parent})"
                )
            return None
        url = _server_url(chosen)
        if url is None:
            self.tried.append(
                "running-server files: the server listens on a Unix socket, not supported"
            )
            return None
        token = chosen.get("token") or None
        return ServerInfo(url, token, f"running-server file (pid {chosen.get('pid')})")

    # ------------------------------------------------------------------ helpers

    def servers(self) -> list[Mapping[str, Any]]:
        if self._servers is None:
            try:
                self._servers = list(self.lister())
            except Exception as exc:  # an unreadable runtime dir must not hide other sources
                self._servers = []
                self._servers_error = f"could not list them ({type(exc).__name__}: {exc})"
        return self._servers

    def own_server(self) -> Mapping[str, Any] | None:
        """The server whose pid is JPY_PARENT_PID, else the only one running."""
        servers = self.servers()
        parent = self.env.get("JPY_PARENT_PID", "").strip()
        if parent:
            for info in servers:
                if str(info.get("pid")) == parent:
                    return info
        return servers[0] if len(servers) == 1 else None

    def token_for(self, url: str) -> str | None:
        """A token some source holds for exactly this URL (never another server's)."""
        for finder in (self.from_env, self.from_hub, self.from_runtime_files):
            try:
                found = finder()
            except ValueError:  # a malformed URL elsewhere does not matter here
                continue
            if found is not None and found.token and _same_url(found.url, url):
                return found.token
        for info in self.servers():
            server_url = _server_url(info)
            if server_url and info.get("token") and _same_url(server_url, url):
                return str(info["token"])
        return None


def discover(
    url: str | None = None,
    token: str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    list_servers: ServerLister | None = None,
) -> ServerInfo:
    """Resolve the server to connect to (see the module docstring for the order).

    Raises :class:`DiscoveryError` listing every source tried when none fits. ``environ``
    and ``list_servers`` default to ``os.environ`` and jupyter_server's
    ``list_running_servers``; tests pass their own.
    """
    env = os.environ if environ is None else environ
    finder = _Discovery(env, list_servers or _default_lister)
    if url:
        found_token = token if token is not None else finder.token_for(url)
        return ServerInfo(url, found_token or None, "arguments")
    finder.tried.append("arguments: no url given")
    for source in (finder.from_env, finder.from_hub, finder.from_runtime_files):
        info = source()
        if info is not None:
            if token is not None:
                return ServerInfo(info.url, token, info.source + " (token from arguments)")
            return info
    raise DiscoveryError(finder.tried)
