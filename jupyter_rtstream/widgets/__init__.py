"""Live notebook widgets (ipywidgets + bqplot) for jupyter-rtstream streams.

``Dashboard(symbols, stream)`` composes pieces that also work alone: :class:`StatusBadge`,
:class:`PriceChart`, :class:`IndicatorTable`, :class:`AlertFeed`, :class:`SymbolControls`
and :class:`AlertRuleForm`. Each live piece buffers in ``handle(message)`` and sends
coalesced updates at a bounded frame rate (``fps``, default 10 per second per widget) with
bqplot's / ipywidgets' ``hold_sync()``; ``stats()`` reports the time from a message's arrival
to its update being sent. Every string from the wire is HTML-escaped before display.

Requires the ``widgets`` extra: ``pip install jupyter-rtstream[widgets]``.
"""

from __future__ import annotations

from ..client.rest import RestAPI, RestError
from ._render import FrameLimiter, RenderStats
from .alerts import AlertFeed
from .chart import PriceChart
from .controls import AlertRuleForm, SymbolControls
from .dashboard import Dashboard
from .status import StatusBadge
from .table import IndicatorTable

__all__ = [
    "AlertFeed",
    "AlertRuleForm",
    "Dashboard",
    "FrameLimiter",
    "IndicatorTable",
    "PriceChart",
    "RenderStats",
    "RestAPI",
    "RestError",
    "StatusBadge",
    "SymbolControls",
]
