"""jupyter-rtstream: typed real-time market analytics for Jupyter.

The server extension (``jupyter_rtstream.server``) is loaded by ``jupyter server`` through
``_jupyter_server_extension_points``; importing this package does not import jupyter_server,
so the client stays light inside a kernel.
"""

from __future__ import annotations

from typing import Any

from ._version import __version__

__all__ = ["__version__"]


def _jupyter_server_extension_points() -> list[dict[str, Any]]:
    from .server.app import RtstreamApp

    return [{"module": "jupyter_rtstream.server.app", "app": RtstreamApp}]
