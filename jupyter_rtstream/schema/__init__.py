"""The protocol's JSON Schema, generated from :mod:`jupyter_rtstream.core.messages`.

``protocol-v1.json`` is committed so that the labextension and other-language clients can
generate their types from it; ``python -m jupyter_rtstream.schema`` rewrites it, and a test
fails when the committed file drifts from the models.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from ..core.messages import json_schema
from ..core.rest import InstrumentHistory

SCHEMA_PATH = Path(__file__).with_name("protocol-v1.json")

#: REST response bodies described in the same document (beside the wire messages).
REST_BODIES: tuple[type[Any], ...] = (InstrumentHistory,)


def document() -> dict[str, Any]:
    """The protocol's messages plus the REST bodies made of them, in one ``$defs``."""
    schema = json_schema()
    defs: dict[str, Any] = schema["$defs"]
    for model in REST_BODIES:
        body = TypeAdapter(model).json_schema(ref_template="#/$defs/{model}", mode="serialization")
        for name, definition in body.pop("$defs", {}).items():
            defs.setdefault(name, definition)
        defs[model.__name__] = body
    schema["x-rest-bodies"] = [model.__name__ for model in REST_BODIES]
    return schema


def render() -> str:
    """The schema document as committed: sorted keys, two-space indent, final newline."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


def load() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return result


def write(path: Path = SCHEMA_PATH) -> Path:
    path.write_text(render(), encoding="utf-8")
    return path
