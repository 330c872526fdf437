"""The dependency graph: cycles, start order, and which services a selection brings in."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from devstack.core.errors import DevstackError, Problem, unknown_name_error


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as `[a, b, a]`, or None. Edges to unknown nodes are ignored."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done or node not in edges:
            return None
        visiting.append(node)
        for neighbour in edges[node]:
            cycle = visit(neighbour)
            if cycle:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in edges:
        cycle = visit(start)
        if cycle:
            return cycle
    return None


def start_order(edges: Mapping[str, Sequence[str]], names: Iterable[str]) -> list[str]:
    """`names` ordered so each comes after its dependencies; ties keep file order."""
    wanted = set(names)
    ordered: list[str] = []
    placed: set[str] = set()

    def place(node: str) -> None:
        if node in placed:
            return
        placed.add(node)
        for dependency in edges.get(node, ()):
            if dependency in wanted:
                place(dependency)
        ordered.append(node)

    for node in edges:
        if node in wanted:
            place(node)
    return ordered


def with_dependencies(edges: Mapping[str, Sequence[str]], names: Iterable[str]) -> set[str]:
    """`names` plus everything they depend on, transitively."""
    found: set[str] = set()
    pending = list(names)
    while pending:
        node = pending.pop()
        if node not in found:
            found.add(node)
            pending.extend(edges.get(node, ()))
    return found


def select(
    edges: Mapping[str, Sequence[str]],
    requested: Sequence[str],
    *,
    autostart: Mapping[str, bool],
    no_deps: bool = False,
    excluded: Sequence[str] = (),
) -> list[str]:
    """The services `devstack up [NAMES]` runs, in start order.

    No names: every autostart service. Names: those plus their dependencies unless
    `no_deps`. `excluded` is removed last, so `--except` always wins.
    """
    unknown = [name for name in [*requested, *excluded] if name not in edges]
    if unknown:
        problems = [unknown_name_error("service", name, edges) for name in unknown]
        raise DevstackError(problems)
    if requested:
        chosen = set(requested) if no_deps else with_dependencies(edges, requested)
    else:
        roots = [name for name in edges if autostart.get(name, True)]
        if not roots and edges:
            raise DevstackError(
                [
                    Problem(
                        "every service has autostart: false, so `devstack up` has nothing to start",
                        hint=f"name the ones to start (devstack up {next(iter(edges))}),"
                        " or set autostart: true on one",
                    )
                ]
            )
        chosen = with_dependencies(edges, roots)
    left_out = set(excluded) & chosen
    chosen -= set(excluded)
    if not chosen:
        raise DevstackError(
            [
                Problem(
                    f"--except {' '.join(sorted(left_out))} leaves no service to start",
                    hint="name fewer services after --except",
                )
            ]
        )
    return start_order(edges, chosen)


@dataclass(frozen=True)
class ReloadSelection:
    """Which services of a reloaded config a run checks and takes: those it has, and
    new ones that start by themselves, unless the run was started for chosen services
    (`up api`), which a new service must not join. Data, so that the short-lived
    process that checks a reload can apply it (runtime/checker.py, issue 16)."""

    in_run: frozenset[str]
    known: frozenset[str]  # every service of the config the run has now
    start_new: bool

    def of(self, autostart: Mapping[str, bool]) -> list[str]:
        """The names, in config order, given each service's `autostart`."""
        return [
            name
            for name, starts in autostart.items()
            if name in self.in_run or (name not in self.known and starts and self.start_new)
        ]
