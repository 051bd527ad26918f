"""The protocol's JSON Schema, generated from :mod:`jupyter_rtstream.core.messages`.

``protocol-v1.json`` is committed so that the labextension and other-language clients can
generate their types from it; ``python -m jupyter_rtstream.schema`` rewrites it, and a test
fails when the committed file drifts from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.messages import json_schema

SCHEMA_PATH = Path(__file__).with_name("protocol-v1.json")


def render() -> str:
    """The schema document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"


def load() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return result


def write(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path
