"""The failure tests' TCP proxy now lives in the package (the chaos suite uses it too)."""

from jupyter_rtstream.chaos.proxy import TcpProxy

__all__ = ["TcpProxy"]
