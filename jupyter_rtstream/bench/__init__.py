"""``python -m jupyter_rtstream.bench``: rtstream against a raw Tornado WebSocket baseline.

Modules: :mod:`.publisher` (the two systems as subprocesses, ``/proc`` CPU and RSS),
:mod:`.baseline` (the raw Tornado broadcaster), :mod:`.clients` (the client process),
:mod:`.report` (table, ratios, JSON). See ``docs/performance.md``.
"""
