"""The views read through the read API only: no Redis client, no key names, no keeper module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VIEWS = sorted((Path(__file__).parent.parent / "views").glob("*.py"))
ALLOWED_FROM_DATA = ("data.read", "data.schema")  # the read API, and the events' vocabulary


def imported(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: p.name)
def test_a_view_imports_from_data_only_the_read_api(path):
    modules = imported(ast.parse(path.read_text()))
    outside = [
        m
        for m in modules
        if (m == "data" or m.startswith("data."))
        and not any(m == a or m.startswith(a + ".") for a in ALLOWED_FROM_DATA)
    ]
    assert outside == []
    assert not [m for m in modules if m == "redis" or m.startswith("redis.")]


@pytest.mark.parametrize("path", VIEWS, ids=lambda p: p.name)
def test_a_view_never_reaches_for_a_client_or_key_names(path):
    tree = ast.parse(path.read_text())
    # ``counts.keys()`` is a dict's keys; ``reader.keys``, not called, would be the key names.
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    reached = [
        f"{path.name}:{node.lineno} .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and (node.attr == "client" or (node.attr == "keys" and id(node) not in called))
    ]
    assert reached == []
