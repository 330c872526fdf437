"""`stackpolicy.step` against the step it replaced (issue 16): over random stacks and
random histories of what the loop feeds it, both give the same next stack and the
same actions, event after event.

The reference is the old step, kept in tests/unit/core/reference_step.py: it copied
every record and scanned every service on each event. The new one looks only at what
an event touches; this proves that what it leaves out would have changed nothing.
The history is one the supervisor could feed: a spawn's outcome only after a
`Launch`, an exit only of a process it adopted, a probe's answer for a `WatchProbe`,
a timer for a `SetTimer`; commands, reloads and shutdowns at any time.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.core import stackmodel as sm
from devstack.core import stackpolicy
from devstack.core.errors import Location
from devstack.core.model import Dependency, ReadyProbe, Service, WatchSpec
from devstack.core.policy import IllegalTransition
from tests.unit.core import reference_step

HERE = Location("devstack.yaml", 1)
Event = Callable[[st.DrawFn], sm.StackEvent]  # an event that may come next, its details drawn


@st.composite
def services(draw: st.DrawFn, count: int) -> dict[str, Service]:
    """`count` services in file order, depending on each other in another, random order."""
    names = [f"s{i}" for i in range(count)]
    order = draw(st.permutations(names))  # a dependency comes earlier in it: no cycle
    found = {}
    for name in names:
        earlier = order[: order.index(name)]
        deps = draw(st.lists(st.sampled_from(earlier), max_size=3)) if earlier else []
        found[name] = Service(
            name=name,
            cmd="run",
            cwd=Path("/"),
            location=HERE,
            depends_on=tuple(
                Dependency(dep, draw(st.sampled_from(["started", "ready", "completed"])), HERE)
                for dep in deps
            ),
            ready=draw(st.sampled_from([None, ReadyProbe("log", "up", HERE, timeout=2.0)])),
            restart=draw(st.sampled_from(["no", "on-failure", "always"])),
            max_restarts=draw(st.sampled_from([None, 0, 2])),
            watch=draw(st.sampled_from([None, WatchSpec((".",), HERE)])),
            restart_dependents=draw(st.booleans()),
            autostart=draw(st.booleans()),
        )
    return found


@dataclass
class World:
    """What the loop would have under way: spawns, processes, probes, timers."""

    spawning: set[str] = field(default_factory=set)
    alive: set[str] = field(default_factory=set)
    probes: set[tuple[str, int]] = field(default_factory=set)
    timers: set[str] = field(default_factory=set)

    def perform(self, actions: list[sm.Action]) -> None:
        for action in actions:
            if isinstance(action, sm.Launch):
                self.spawning.add(action.name)
            elif isinstance(action, sm.Adopt):
                self.alive.add(action.name)
            elif isinstance(action, sm.WatchProbe):
                self.probes.add((action.name, action.instance))
            elif isinstance(action, sm.SetTimer):
                self.timers.add(action.name)
            elif isinstance(action, sm.CancelTimer):
                self.timers.discard(action.name)

    def events(self, stack: sm.Stack, all_services: Mapping[str, Service]) -> list[Event]:
        """The events that could come next (their details drawn only if chosen)."""

        def some(names: Iterable[str]) -> st.SearchStrategy[tuple[str, ...]]:
            return st.lists(st.sampled_from(sorted(names)), min_size=1, max_size=3).map(tuple)

        def fixed(event: sm.StackEvent) -> Event:
            return lambda draw: event

        events = [
            fixed(event(name))
            for name in sorted(self.spawning)
            for event in (
                partial(sm.SpawnDone, started_at=1.0),
                partial(sm.SpawnError, why="port 3000 is in use", cause="could not start"),
                sm.SpawnAbandoned,
            )
        ]
        events += [
            lambda draw, n=n: sm.ProcessExited(n, draw(st.sampled_from([0, 1, -9])))
            for n in sorted(self.alive)
        ]
        events += [
            lambda draw, n=n, i=i: sm.ProbeDone(n, i, draw(st.booleans()), "no line", 2.0)
            for n, i in sorted(self.probes)
        ]
        events += [fixed(sm.BackoffDone(name)) for name in sorted(self.timers)]
        signums = st.sampled_from([None, signal.SIGINT, signal.SIGTERM])
        events += [
            lambda draw: sm.StartCommand(draw(some(stack.services))),
            lambda draw: sm.StopCommand(draw(some(all_services))),
            lambda draw: sm.RestartCommand(draw(some(all_services)), "asked", draw(st.booleans())),
            lambda draw: sm.ConfigChanged(tuple((n, "env") for n in draw(some(all_services)))),
            lambda draw: sm.ShutdownRequested(draw(signums)),
            fixed(sm.InternalError()),
        ]
        # A reload: a service nothing depends on leaves the config, or comes back (then
        # it is forgotten, or added, as the supervisor's `apply` does), or some
        # services lose their dependencies (a waiting one may start).
        needed = {dep for service in all_services.values() for dep in service.dependency_names}
        last = next(name for name in reversed(all_services) if name not in needed)
        if last in stack.services:
            without = {n: s for n, s in all_services.items() if n != last}
            events.append(fixed(sm.Reconfigure(without)))
        else:
            events.append(fixed(sm.Reconfigure(all_services)))
        events.append(
            lambda draw: sm.Reconfigure(loosened(all_services, draw(some(stack.services))))
        )
        if last in stack.records and last not in stack.services:
            events.append(fixed(sm.ForgetServices((last,))))
        if last in stack.services and last not in stack.records:
            events.append(fixed(sm.AddServices((last,), "added to devstack.yaml, starting")))
        return events

    def happened(self, event: sm.StackEvent) -> None:
        if isinstance(event, sm.SpawnDone | sm.SpawnError | sm.SpawnAbandoned):
            self.spawning.discard(event.name)
        elif isinstance(event, sm.ProcessExited):
            self.alive.discard(event.name)
        elif isinstance(event, sm.ProbeDone):
            self.probes.discard((event.name, event.instance))
        elif isinstance(event, sm.BackoffDone):
            self.timers.discard(event.name)


def loosened(services: Mapping[str, Service], names: Iterable[str]) -> dict[str, Service]:
    """`services` with `names` depending on nothing."""
    return {n: replace(s, depends_on=()) if n in names else s for n, s in services.items()}


def same(new: sm.Stack, old: reference_step.Stack) -> None:
    assert list(new.records.items()) == list(old.records.items())
    assert list(new.configs.items()) == list(old.configs.items())
    assert new.services == old.services
    for flag in (
        "abort_on_exit",
        "shutdown_requests",
        "shutdown_signal",
        "internal_errors",
        "first_spawns_done",
        "finished",
    ):
        assert getattr(new, flag) == getattr(old, flag), flag


@settings(max_examples=120, deadline=None)
@given(data=st.data(), count=st.integers(2, 7))
def test_step_agrees_with_the_reference(data: st.DataObject, count: int) -> None:
    all_services = data.draw(services(count))
    chosen = data.draw(st.lists(st.sampled_from(sorted(all_services)), min_size=1, unique=True))
    names = [name for name in all_services if name in chosen]
    abort = data.draw(st.booleans())
    new = sm.Stack.of(all_services, names, abort)
    old = reference_step.Stack.of(all_services, names, abort)
    world, now = World(), 0.0
    event: sm.StackEvent = sm.Boot()
    for _ in range(data.draw(st.integers(1, 40))):
        try:
            old, expected = reference_step.step(old, event, now)
        except IllegalTransition as error:
            with_reference = str(error)
            try:
                stackpolicy.step(new, event, now)
            except IllegalTransition as mine:
                assert str(mine) == with_reference
                return
            raise AssertionError(f"the reference raised {error!r}, the new step not") from None
        new, actions = stackpolicy.step(new, event, now)
        assert actions == expected, event
        same(new, old)
        world.happened(event)
        world.perform(actions)
        now += data.draw(st.sampled_from([0.0, 0.5, 3.0, 11.0]))
        choices = world.events(new, all_services)
        event = choices[data.draw(st.integers(0, len(choices) - 1))](data.draw)


def service(name: str, *deps: tuple[str, str], probe: bool = False) -> Service:
    return Service(
        name=name,
        cmd="run",
        cwd=Path("/"),
        location=HERE,
        depends_on=tuple(Dependency(dep, condition, HERE) for dep, condition in deps),  # type: ignore[arg-type]
        ready=ReadyProbe("log", "up", HERE) if probe else None,
    )


# c <- a (ready) <- b (started): what each history's last event makes the step do.
CHAIN = {
    "c": service("c", probe=True),
    "a": service("a", ("c", "ready")),
    "b": service("b", ("a", "started")),
}
LAST_STEPS: dict[str, tuple[dict[str, Service], list[sm.StackEvent], list[sm.Action]]] = {
    "a failure runs down the chain in one step": (
        CHAIN,
        [sm.Boot(), sm.SpawnDone("c", 1.0), sm.ProcessExited("c", 1)],
        [
            sm.Announce("c", "exited 1", "error"),
            sm.Announce("a", "not started: c exited 1", "error"),
            sm.Announce("b", "not started: a crashed", "error"),
            sm.Finish(),
        ],
    ),
    "a reload that drops a dependency starts the service waiting on it": (
        CHAIN,
        [sm.Boot(), sm.SpawnDone("c", 1.0), sm.Reconfigure(loosened(CHAIN, ["a"]))],
        [sm.Launch("a")],
    ),
    "a shutdown stops dependents first, each once those depending on it are gone": (
        {
            "c": service("c"),
            "a": service("a", ("c", "started")),
            "b": service("b", ("a", "started")),
        },
        [
            sm.Boot(),
            sm.SpawnDone("c", 1.0),
            sm.SpawnDone("a", 1.0),
            sm.SpawnDone("b", 1.0),
            sm.ShutdownRequested(None),
            sm.ProcessExited("b", -15),
        ],
        [sm.Announce("b", "stopped"), sm.Halt("a")],
    ),
}


@pytest.mark.parametrize("case", LAST_STEPS)
def test_last_step(case: str) -> None:
    services, history, expected = LAST_STEPS[case]
    new = sm.Stack.of(services, services)
    old = reference_step.Stack.of(services, services)
    for event in history:
        old, reference = reference_step.step(old, event, 0.0)
        new, actions = stackpolicy.step(new, event, 0.0)
        assert actions == reference, event
        same(new, old)
    assert actions == expected
