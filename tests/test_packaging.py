"""What ``pip install jupyter-rtstream`` gives: the installed distribution's own metadata."""

from __future__ import annotations

import importlib.metadata

from packaging.requirements import Requirement


def _requirements() -> list[Requirement]:
    return [Requirement(r) for r in importlib.metadata.requires("jupyter-rtstream") or []]


def test_a_plain_install_brings_the_dashboard_dependencies() -> None:
    """ipywidgets and bqplot are unconditional: ``jupyter_rtstream.Dashboard`` (README) must
    work after a plain ``pip install`` (it used to need the ``widgets`` extra)."""
    unconditional = {r.name.lower() for r in _requirements() if r.marker is None}
    assert {"ipywidgets", "bqplot", "jupyter-server", "pydantic", "tornado"} <= unconditional


def test_the_dashboard_imports_from_the_top_level_package() -> None:
    import jupyter_rtstream
    from jupyter_rtstream.widgets import Dashboard

    assert jupyter_rtstream.Dashboard is Dashboard
