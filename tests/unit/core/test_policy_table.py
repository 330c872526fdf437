"""The transition table in policy.py's docstring (and the diagram in
docs/architecture.md) against what `policy.decide` does: a state, an event or a
transition added to the code without the table fails here.

Every state, with and without a process where that can be, meets every event under
every kind of restart rule; the table must list exactly the (state, process, event)
-> next states that come out, and no others.
"""

from __future__ import annotations

import re
from pathlib import Path

from devstack.core import policy
from devstack.core.policy import (
    BackoffElapsed,
    DependencyFailed,
    Exited,
    IllegalTransition,
    ProbeGaveUp,
    ProbePassed,
    Record,
    Restart,
    RestartRule,
    Spawned,
    SpawnFailed,
    Start,
    State,
    Stop,
    decide,
)

S = State
# A process exists in these states (in STARTING, once spawned and probing)...
WITH_PROCESS = {S.STARTING, S.READY, S.RUNNING, S.STOPPING, S.RESTARTING}
# ...and in these none does (in STARTING, while waiting for its dependencies).
WITHOUT_PROCESS = set(State) - WITH_PROCESS | {S.STARTING}
RULES = [
    RestartRule(),
    RestartRule(mode="on-failure"),
    RestartRule(mode="always"),
    RestartRule(watch=True),
    RestartRule(has_probe=True),
    RestartRule(mode="on-failure", max_restarts=0),
    RestartRule(mode="always", max_restarts=0),
    RestartRule(mode="on-failure", max_restarts=0, watch=True),
]
EVENTS: list[policy.Event] = [
    Start(),
    Spawned(),
    SpawnFailed(),
    DependencyFailed("db exited 1"),
    ProbePassed(),
    ProbeGaveUp(),
    Exited(0),
    Exited(1),
    BackoffElapsed(),
    Stop(),
    Restart(),
]

Row = tuple[tuple[str, bool, str], tuple[str, ...]]


def observed_transitions() -> list[Row]:
    seen: dict[tuple[State, bool, str], set[State]] = {}
    for state in State:
        for alive in (False, True):
            if state not in (WITH_PROCESS if alive else WITHOUT_PROCESS):
                continue
            for event in EVENTS:
                for rule in RULES:
                    record = Record(state=state, alive=alive, spawns=int(alive))
                    try:
                        decision = decide(record, event, 0.0, rule)
                    except IllegalTransition:
                        continue
                    key = (state, alive, type(event).__name__)
                    seen.setdefault(key, set()).add(decision.record.state)
    order = list(State)
    return [
        ((state.value, alive, event), tuple(sorted(s.value for s in nexts)))
        for (state, alive, event), nexts in sorted(
            seen.items(), key=lambda item: (order.index(item[0][0]), item[0][1], item[0][2])
        )
    ]


def documented_transitions() -> list[Row]:
    """The rows of the table in policy.py's docstring."""
    doc = policy.__doc__ or ""
    table = doc[doc.index("state               process") :]
    rows: list[Row] = []
    for line in table.splitlines()[1:]:
        if not line.strip():
            break
        state, process, event, nexts = re.split(r"\s{2,}", line.strip(), maxsplit=3)
        rows.append(((state, process == "yes", event), tuple(nexts.split(", "))))
    return rows


def test_the_docstring_table_is_exactly_what_decide_does() -> None:
    assert documented_transitions() == observed_transitions()


def test_every_state_and_event_is_in_the_table() -> None:
    rows = documented_transitions()
    assert {state for (state, _, _), _ in rows} == {state.value for state in State}
    assert {event for (_, _, event), _ in rows} == {kind.__name__ for kind in policy.ALLOWED}


def test_the_architecture_diagram_has_every_change_of_state() -> None:
    diagram = (Path(__file__).parents[3] / "docs" / "architecture.md").read_text()
    edges = {
        (state, nxt, event)
        for (state, _, event), nexts in observed_transitions()
        for nxt in nexts
        if nxt != state
    }
    drawn = {
        (a.replace("_", "-"), b.replace("_", "-"), e)
        for a, b, e in re.findall(r"(\S+) --> (\S+): (\w+)", diagram)
    }
    missing = {f"{a} --> {b}: {e}" for a, b, e in edges} - {
        f"{a} --> {b}: {e}" for a, b, e in drawn
    }
    assert not missing, f"docs/architecture.md's diagram lacks: {sorted(missing)}"
