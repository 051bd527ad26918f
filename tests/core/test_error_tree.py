"""The error tree drawn in ``core.errors``'s docstring is the real class hierarchy."""

from __future__ import annotations

import re

from jupyter_rtstream.client import errors as client_errors
from jupyter_rtstream.client import rest
from jupyter_rtstream.core import errors
from jupyter_rtstream.server import store

MODULES = (errors, client_errors, store, rest)


def drawn_tree() -> list[tuple[str, str]]:
    """``(child, parent)`` for every class drawn in the docstring, by indentation."""
    doc = errors.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    edges: list[tuple[str, str]] = []
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        match = re.match(r"^(\s*(?:[│ ]*)(?:[├└]── )?)([A-Z]\w+)", line)
        if match is None:
            continue
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            edges.append((name, stack[-1][1]))
        stack.append((depth, name))
    return edges


def find(name: str) -> type:
    for module in MODULES:
        found = getattr(module, name, None)
        if isinstance(found, type):
            return found
    raise AssertionError(f"{name} is drawn in the tree but defined nowhere")


def test_every_drawn_edge_is_a_subclass_edge() -> None:
    edges = drawn_tree()
    assert ("StoreError", "RtstreamError") in edges
    assert ("RestError", "ClientError") in edges
    assert len(edges) >= 11
    for child, parent in edges:
        assert find(parent) in find(child).__mro__[1:], (child, parent)


def test_store_errors_are_still_runtime_errors() -> None:
    assert issubclass(store.StoreError, RuntimeError)
