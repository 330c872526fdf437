"""The stack policy's step alone (issue 16): what one event costs the supervisor's
decisions in a stack of 50, 200 and 1,000 services, before and after the step was made
to cost what the event touches (the "before" column is the old step, kept as
tests/unit/core/reference_step.py). No process runs: the events are fed as the loop
would feed them, and only the calls to `step` are timed.

The stack: `s0` has a ready probe; every third service waits for it to be ready, every
fifth also for the service before it to have started; all restart on failure.
- start: Boot, then each spawn done and the probe passed, until nothing is left to start
- restart: in the running stack, one service exits, its backoff ends, it is spawned again
  (per event)
- shutdown: a SIGTERM, then the first 20 exits, in the order the services were halted
  (per exit; the old step's whole shutdown of 1,000 services would take minutes)
"""

from __future__ import annotations

import signal
import statistics
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.scenarios import Context
from devstack.core import stackmodel as sm
from devstack.core import stackpolicy
from devstack.core.errors import Location
from devstack.core.model import Dependency, ReadyProbe, Service
from tests.unit.core import reference_step

SIZES = (50, 200, 1000)
SAMPLED_EXITS = 20
HERE = Location("devstack.yaml", 1)
Step = Callable[[Any, sm.StackEvent, float], tuple[Any, list[sm.Action]]]
IMPLEMENTATIONS: dict[str, tuple[Callable[..., Any], Step]] = {
    "devstack": (sm.Stack.of, stackpolicy.step),
    "before (reference step)": (reference_step.Stack.of, reference_step.step),
}


def services(count: int) -> dict[str, Service]:
    found = {}
    for i in range(count):
        deps = []
        if i and i % 3 == 0:
            deps.append(Dependency("s0", "ready", HERE))
        if i and i % 5 == 0:
            deps.append(Dependency(f"s{i - 1}", "started", HERE))
        found[f"s{i}"] = Service(
            name=f"s{i}",
            cmd="run",
            cwd=Path("/"),
            location=HERE,
            depends_on=tuple(deps),
            ready=ReadyProbe("log", "up", HERE) if i == 0 else None,
            restart="on-failure",
        )
    return found


class Run:
    """One stack fed by one implementation, timing each step."""

    def __init__(self, make: Callable[..., Any], step: Step, count: int) -> None:
        self.step = step
        self.stack = make(services(count), [f"s{i}" for i in range(count)])
        self.now = 0.0

    def feed(self, event: sm.StackEvent) -> tuple[list[sm.Action], float]:
        started = time.perf_counter()
        self.stack, actions = self.step(self.stack, event, self.now)
        return actions, time.perf_counter() - started

    def until_quiet(self, event: sm.StackEvent) -> float:
        """Feed `event` and every spawn and probe answer that follows; seconds in `step`."""
        queue, spent = [event], 0.0
        while queue:
            actions, seconds = self.feed(queue.pop(0))
            spent += seconds
            for action in actions:
                if isinstance(action, sm.Launch):
                    queue.append(sm.SpawnDone(action.name, 1.0))
                elif isinstance(action, sm.WatchProbe):
                    queue.append(sm.ProbeDone(action.name, action.instance, True))
        return spent


def once(make: Callable[..., Any], step: Step, count: int) -> dict[str, float]:
    run = Run(make, step, count)
    start = run.until_quiet(sm.Boot())
    name = f"s{count - 1}"
    run.now += 1.0
    restart = [run.feed(sm.ProcessExited(name, 1))[1], run.feed(sm.BackoffDone(name))[1]]
    restart.append(run.feed(sm.SpawnDone(name, 2.0))[1])
    actions, _ = run.feed(sm.ShutdownRequested(signal.SIGTERM))
    halted = deque(action.name for action in actions if isinstance(action, sm.Halt))
    exits = []
    for _ in range(SAMPLED_EXITS):  # each stopped service exits, in the order it was halted
        actions, seconds = run.feed(sm.ProcessExited(halted.popleft(), -15))
        halted.extend(action.name for action in actions if isinstance(action, sm.Halt))
        exits.append(seconds)
    return {
        "start: boot to all spawned (ms)": start * 1e3,
        "restart of one service (µs per event)": statistics.mean(restart) * 1e6,
        "shutdown (µs per exit)": statistics.mean(exits) * 1e6,
    }


def run(ctx: Context) -> None:
    for count in SIZES:
        for rep in range(ctx.reps(5, 2)):
            for tool, (make, step) in IMPLEMENTATIONS.items():
                for metric, value in once(make, step, count).items():
                    fmt = "{:.1f}" if "ms" in metric else "{:.0f}"
                    ctx.results.add(f"policy step N={count}", metric, tool, value, fmt=fmt)
            ctx.log(f"policy: N={count} rep {rep + 1} done")
