"""Dependency order and selection."""

from __future__ import annotations

import pytest

from devstack.core.errors import DevstackError
from devstack.core.graph import ReloadSelection, find_cycle, select, start_order

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


# (in the run, the config's services before, start new ones?, autostart now) -> taken
RELOADS = [
    # the run's services stay, in the new config's order
    ({"b", "a"}, {"a", "b"}, True, {"a": True, "b": True}, ["a", "b"]),
    # one removed from the config is gone; one of the run keeps running without autostart
    ({"a", "b"}, {"a", "b"}, True, {"a": False}, ["a"]),
    # a new service that starts by itself joins a plain `up`...
    ({"a"}, {"a"}, True, {"a": True, "new": True}, ["a", "new"]),
    # ...not one started for chosen services (`up a`)
    ({"a"}, {"a"}, False, {"a": True, "new": True}, ["a"]),
    # nor a new one with autostart: false
    ({"a"}, {"a"}, True, {"a": True, "new": False}, ["a"]),
    # a known service the run left out (`up --except b`) stays out
    ({"a"}, {"a", "b"}, True, {"a": True, "b": True}, ["a"]),
]


@pytest.mark.parametrize(("in_run", "known", "start_new", "autostart", "taken"), RELOADS)
def test_a_reload_takes_the_runs_services_and_new_ones_that_start_by_themselves(
    in_run: set[str], known: set[str], start_new: bool, autostart: dict[str, bool], taken: list[str]
) -> None:
    selection = ReloadSelection(frozenset(in_run), frozenset(known), start_new)
    assert selection.of(autostart) == taken
