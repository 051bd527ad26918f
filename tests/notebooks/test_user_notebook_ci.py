"""Notebook CI for our users (issue 5, item 5): a researcher's notebook, with the conftest of
docs/notebook-ci.md, runs under nbval against a server that ``jupyter_rtstream.testing``
starts; and nbval really compares outputs (a notebook whose stored output is wrong fails)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest


PROJECT = Path(__file__).with_name("user_project")


def test_a_users_notebooks_run_under_nbval(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    # A second copy whose stored output is wrong: nbval must catch it.
    notebook = json.loads((project / "analysis.ipynb").read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", ()):
            if output.get("text") == ["sma_20: 19.5\n"]:
                output["text"] = ["sma_20: 19.6\n"]
    (project / "broken.ipynb").write_text(json.dumps(notebook))

    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTER_RTSTREAM_")}
    env["JUPYTER_RUNTIME_DIR"] = str(tmp_path / "runtime")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval",
        "analysis.ipynb",
        "broken.ipynb",
        "--rtstream-server",
        "-p",
        "no:cacheprovider",
        "-q",
    ]
    result = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=240
    )
    out = result.stdout + result.stderr
    # 4 code cells each: all of analysis.ipynb passes; broken.ipynb fails at its sma_20 cell.
    assert result.returncode == 1, out
    assert "FAILED broken.ipynb::Cell 2" in out, out
    assert "1 failed, 7 passed" in out, out
    assert "19.6" in out and "19.5" in out, out  # the mismatch is reported
