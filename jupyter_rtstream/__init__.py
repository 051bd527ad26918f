"""jupyter-rtstream: typed real-time market analytics for Jupyter.

The server extension (``jupyter_rtstream.server``) is loaded by ``jupyter server`` through
``_jupyter_server_extension_points``; importing this package does not import jupyter_server,
so the client stays light inside a kernel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .client import Stream, connect
    from .widgets import Dashboard

__all__ = ["Dashboard", "Stream", "__version__", "connect"]


def __getattr__(name: str) -> Any:
    # Lazy: ``import jupyter_rtstream`` stays light (no tornado client, no jupyter_server).
    if name in ("connect", "Stream"):
        from . import client

        return getattr(client, name)
    if name == "Dashboard":  # imports ipywidgets and bqplot: only when asked for
        from .widgets import Dashboard

        return Dashboard
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import RtstreamApp

    return [{"module": "jupyter_rtstream.server.app", "app": RtstreamApp}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    """The prebuilt JupyterLab extension (for ``jupyter labextension develop``)."""
    return [{"src": "labextension", "dest": "jupyter-rtstream"}]
