"""pandas, which live frames need, is an optional extra: a clear error when it is missing."""

from __future__ import annotations

try:
    import pandas as pd
except ImportError as exc:  # pragma: no cover - exercised by hiding pandas in a test
    raise ImportError(
        "jupyter_rtstream live frames need pandas, an optional extra: "
        "pip install 'jupyter-rtstream[pandas]'"
    ) from exc

__all__ = ["pd"]
