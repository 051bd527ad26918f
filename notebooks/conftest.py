"""nbval setup for the example notebooks: one seeded jupyter-rtstream server for all.

``--rtstream-server`` (from the ``jupyter_rtstream.testing`` plugin) starts the server before
nbval starts any kernel; the kernels find it through ``JUPYTER_RTSTREAM_URL`` /
``JUPYTER_RTSTREAM_TOKEN``. Run them with ``make test`` or::

    pytest --nbval notebooks -p jupyter_rtstream.testing --rtstream-server
"""

from __future__ import annotations

from pathlib import Path

import pytest

SANITIZE = Path(__file__).with_name("nbval-sanitize.cfg")


def pytest_configure(config: pytest.Config) -> None:
    # Timestamps are the only outputs that may vary; sanitize them unless told otherwise.
    if getattr(config.option, "nbval_sanitize_with", "unset") is None:
        config.option.nbval_sanitize_with = str(SANITIZE)
