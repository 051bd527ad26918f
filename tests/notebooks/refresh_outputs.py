"""Re-execute the example notebooks against a seeded server and store their outputs.

nbval compares a notebook's stored outputs with a fresh run, so after changing a notebook
run this (same server settings as the ``rtstream_server`` fixture and notebooks/conftest.py)::

    .venv/bin/python -m tests.notebooks.refresh_outputs            # every notebooks/*.ipynb
    .venv/bin/python -m tests.notebooks.refresh_outputs 03-alerts  # some of them
    .venv/bin/python -m tests.notebooks.refresh_outputs tests/notebooks/user_project/analysis.ipynb
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from jupyter_rtstream.testing import ServerProcess

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def refresh(paths: list[Path]) -> None:
    with ServerProcess() as server:
        os.environ["JUPYTER_RTSTREAM_URL"] = server.url
        os.environ["JUPYTER_RTSTREAM_TOKEN"] = server.token
        for path in paths:
            notebook = nbformat.read(path, as_version=4)
            client = NotebookClient(
                notebook,
                timeout=300,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
                store_widget_state=False,
            )
            client.execute()
            nbformat.write(notebook, path)
            print(f"refreshed {path.name}")


def main(argv: list[str]) -> None:
    names = argv or sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb"))
    paths = [Path(name) if "/" in name else NOTEBOOKS / name for name in names]
    refresh([path.with_suffix(".ipynb").resolve() for path in paths])


if __name__ == "__main__":
    main(sys.argv[1:])
