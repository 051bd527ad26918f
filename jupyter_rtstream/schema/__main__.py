"""``python -m jupyter_rtstream.schema [--check]``: regenerate (or check) protocol-v1.json."""

from __future__ import annotations

import sys

from . import SCHEMA_PATH, render, write

if __name__ == "__main__":
    if "--check" in sys.argv[1:]:
        if SCHEMA_PATH.read_text(encoding="utf-8") != render():
            sys.exit(f"{SCHEMA_PATH} is stale: run `python -m jupyter_rtstream.schema`")
        print(f"{SCHEMA_PATH.name} is up to date")
    else:
        print(f"wrote {write()}")
