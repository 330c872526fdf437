"""Dependency order and selection."""

from __future__ import annotations

import pytest

from devstack.core.errors import DevstackError
from devstack.core.graph import find_cycle, select, start_order

EDGES = {"db": [], "jobs": ["db"], "api": ["jobs", "db"], "web": ["api"], "mail": []}
AUTOSTART = {name: True for name in EDGES} | {"mail": False}


def test_start_order_puts_dependencies_first_and_keeps_file_order() -> None:
    assert start_order(EDGES, EDGES) == ["db", "jobs", "api", "web", "mail"]


def test_select_brings_dependencies_transitively() -> None:
    assert select(EDGES, ["api"], autostart=AUTOSTART) == ["db", "jobs", "api"]


def test_no_deps_and_except() -> None:
    assert select(EDGES, ["api"], autostart=AUTOSTART, no_deps=True) == ["api"]
    assert select(EDGES, [], autostart=AUTOSTART, excluded=["web"]) == ["db", "jobs", "api"]


def test_autostart_false_starts_only_when_named() -> None:
    assert "mail" not in select(EDGES, [], autostart=AUTOSTART)
    assert select(EDGES, ["mail"], autostart=AUTOSTART) == ["mail"]


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(DevstackError) as caught:
        select(EDGES, ["jbos"], autostart=AUTOSTART)
    assert "unknown service 'jbos'" in caught.value.render()
    assert "did you mean 'jobs'?" in caught.value.render()


def test_cycles() -> None:
    assert find_cycle(EDGES) is None
    assert find_cycle({"a": ["b"], "b": ["a"]}) == ["a", "b", "a"]
