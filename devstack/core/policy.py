"""The life of one service as data: its states, what may happen in each, and what to do.

`decide(record, event, now, rule)` is pure: it returns the service's next `Record`
(all of the service's state: the supervisor keeps none) and the `Action`s to carry
out (want a spawn, stop, wait before a restart, say something). The restart policy
lives here too: `restart: no | on-failure | always`, exponential backoff from 1 s to
a 30 s cap, reset once a run lasts 10 s, and `max_restarts` restarts in a row.
`stackpolicy` adds what needs the other services (dependencies, shutdown order).

Every transition, by state, whether a process exists, and event. A request already
met (Start while running, Stop once stopped, a timer that fired after its cancel) is
a legal transition to the same state, doing nothing. An event a state does not list
is a bug in the caller, raised as `IllegalTransition` naming the states that allow
it. tests/unit/test_policy_table.py checks this table against `decide`:

    state               process  event             next state
    starting            no       BackoffElapsed    starting
    starting            no       DependencyFailed  crashed
    starting            no       Restart           starting
    starting            no       SpawnFailed       backing-off, crashed, waiting-for-change
    starting            no       Spawned           running, starting
    starting            no       Start             starting
    starting            no       Stop              stopped
    starting            yes      BackoffElapsed    starting
    starting            yes      Exited            backing-off, crashed, exited, waiting-for-change
    starting            yes      ProbeGaveUp       running
    starting            yes      ProbePassed       ready
    starting            yes      Restart           restarting
    starting            yes      Start             starting
    starting            yes      Stop              stopping
    ready               yes      BackoffElapsed    ready
    ready               yes      Exited            backing-off, crashed, exited, waiting-for-change
    ready               yes      Restart           restarting
    ready               yes      Start             ready
    ready               yes      Stop              stopping
    running             yes      BackoffElapsed    running
    running             yes      Exited            backing-off, crashed, exited, waiting-for-change
    running             yes      Restart           restarting
    running             yes      Start             running
    running             yes      Stop              stopping
    stopping            yes      BackoffElapsed    stopping
    stopping            yes      Exited            stopped
    stopping            yes      Restart           stopping
    stopping            yes      Start             stopping
    stopping            yes      Stop              stopping
    restarting          yes      BackoffElapsed    restarting
    restarting          yes      Exited            starting
    restarting          yes      Restart           restarting
    restarting          yes      Start             restarting
    restarting          yes      Stop              stopping
    backing-off         no       BackoffElapsed    starting
    backing-off         no       Restart           starting
    backing-off         no       Start             starting
    backing-off         no       Stop              stopped
    crashed             no       BackoffElapsed    crashed
    crashed             no       Restart           starting
    crashed             no       Start             starting
    crashed             no       Stop              crashed
    waiting-for-change  no       BackoffElapsed    waiting-for-change
    waiting-for-change  no       Restart           starting
    waiting-for-change  no       Start             starting
    waiting-for-change  no       Stop              waiting-for-change
    stopped             no       BackoffElapsed    stopped
    stopped             no       Restart           starting
    stopped             no       Start             starting
    stopped             no       Stop              stopped
    exited              no       BackoffElapsed    exited
    exited              no       Restart           starting
    exited              no       Start             starting
    exited              no       Stop              exited

Several next states: the restart rule decides (`restart:`, `watch:`, `max_restarts`,
a ready probe), and so does the exit status.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Literal

from devstack.core.model import RestartMode, Service

Level = Literal["info", "warn", "error"]

BACKOFF_FIRST = 1.0
BACKOFF_CAP = 30.0
STABLE_AFTER = 10.0  # a run this long forgives earlier failures


class State(StrEnum):
    STARTING = "starting"  # waiting for dependencies, or spawned and probing
    READY = "ready"  # its ready probe passed
    RUNNING = "running"  # alive; no probe, or the probe gave up
    STOPPING = "stopping"  # being stopped for good
    RESTARTING = "restarting"  # being stopped, to start again at once
    BACKING_OFF = "backing-off"  # exited; waits before the policy restarts it
    CRASHED = "crashed"  # failed, and nothing will restart it
    WAITING_FOR_CHANGE = "waiting-for-change"  # failed; the watcher restarts it on a change
    STOPPED = "stopped"  # never started, or stopped on request
    EXITED = "exited"  # ended on its own with status 0, not to be restarted


ENDED_FOR_GOOD = frozenset({State.CRASHED, State.STOPPED, State.EXITED})


@dataclass(frozen=True)
class RestartRule:
    """What the policy needs to know about a service's configuration."""

    mode: RestartMode = "no"
    max_restarts: int | None = None
    watch: bool = False
    has_probe: bool = False

    @classmethod
    def of(cls, service: Service) -> RestartRule:
        return cls(
            mode=service.restart,
            max_restarts=service.max_restarts,
            watch=service.watch is not None,
            has_probe=service.ready is not None,
        )


@dataclass(frozen=True)
class Record:
    """Where one service is in its life; the supervisor keeps one per service."""

    state: State = State.STOPPED
    alive: bool = False  # a process of the current instance exists
    ready: bool = False  # satisfies `condition: ready` of its dependents
    spawns: int = 0  # instances started in this run
    failures: int = 0  # policy restarts in a row, for backoff and max_restarts
    up_since: float | None = None  # monotonic time of the current instance's spawn
    last_exit: int | None = None  # negative: killed by that signal
    pending: bool = False  # wants to spawn once its dependencies meet their conditions
    spawning: bool = False  # a spawn is under way (the port check, the exec)
    held: bool = False  # stopped on request: does not count as ended for good
    detail: str = ""  # "waiting for db (ready)", "not ready: ...": said in `ps`
    started_at: float | None = None  # wall-clock time the current instance started
    reason: str = ""  # why it last restarted: "app.py changed", "asked by `devstack restart`"
    spawn_error: str = ""  # why its last start failed: what its dependents are told

    @property
    def restarts(self) -> int:
        return max(self.spawns - 1, 0)


# -- events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """Start it (first start, `devstack start`); the supervisor spawns once deps allow."""


@dataclass(frozen=True)
class Spawned:
    """Its process exists now."""

    started_at: float | None = None  # wall-clock time, for `ps`


@dataclass(frozen=True)
class SpawnFailed:
    """It could not be started (port taken, command not executable); already reported."""


@dataclass(frozen=True)
class DependencyFailed:
    """A dependency ended in a way that can never meet its condition; it will not start."""

    reason: str  # "db exited 1"


@dataclass(frozen=True)
class ProbePassed:
    pass


@dataclass(frozen=True)
class ProbeGaveUp:
    """The ready probe timed out; the process keeps running but is never ready."""


@dataclass(frozen=True)
class Exited:
    code: int


@dataclass(frozen=True)
class BackoffElapsed:
    pass


@dataclass(frozen=True)
class Stop:
    """Stop it for good (shutdown, `devstack stop`, removed from the config)."""

    hold: bool = True  # on request: it stays stopped, and does not end the stack


@dataclass(frozen=True)
class Restart:
    """Restart it now (a change, `devstack restart`, an env edit)."""

    reason: str = ""  # said as "restarting: <reason>", and kept for `ps`


Event = (
    Start
    | Spawned
    | SpawnFailed
    | DependencyFailed
    | ProbePassed
    | ProbeGaveUp
    | Exited
    | BackoffElapsed
    | Stop
    | Restart
)

# -- actions ----------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    """Spawn a new instance as soon as its dependencies meet their conditions."""


@dataclass(frozen=True)
class StartProbe:
    """Wait for the ready probe (armed before the spawn) of the instance just spawned."""


@dataclass(frozen=True)
class StopProcess:
    """Stop the instance: stop_signal to its group, stop_timeout, then SIGKILL."""


@dataclass(frozen=True)
class ScheduleRestart:
    delay: float


@dataclass(frozen=True)
class CancelRestart:
    pass


@dataclass(frozen=True)
class Say:
    """A message about the service, without its name: "exited 1, restarting in 2s"."""

    message: str
    level: Level = "info"


Action = Spawn | StartProbe | StopProcess | ScheduleRestart | CancelRestart | Say


@dataclass(frozen=True)
class Decision:
    record: Record
    actions: tuple[Action, ...] = ()


class IllegalTransition(RuntimeError):
    """A bug: an event arrived in a state that does not allow it."""


S = State
# Where each event acts (ACTS) or is a legal no-op (IGNORED: a request that is already
# met, a timer that fired after a cancel); anywhere else it is a bug in the caller.
# The module docstring's table is checked against `decide` by tests/unit/test_policy.py.
ACTS: dict[type, frozenset[State]] = {
    Start: frozenset({S.STOPPED, S.EXITED, S.CRASHED, S.WAITING_FOR_CHANGE, S.BACKING_OFF}),
    Spawned: frozenset({S.STARTING}),
    SpawnFailed: frozenset({S.STARTING}),
    DependencyFailed: frozenset({S.STARTING}),
    ProbePassed: frozenset({S.STARTING}),
    ProbeGaveUp: frozenset({S.STARTING}),
    Exited: frozenset({S.STARTING, S.READY, S.RUNNING, S.STOPPING, S.RESTARTING}),
    BackoffElapsed: frozenset({S.BACKING_OFF}),
    Stop: frozenset({S.STARTING, S.READY, S.RUNNING, S.BACKING_OFF, S.RESTARTING}),
    Restart: frozenset(set(State) - {S.STOPPING}),
}
IGNORED: dict[type, frozenset[State]] = {
    Start: frozenset({S.STARTING, S.READY, S.RUNNING, S.STOPPING, S.RESTARTING}),
    BackoffElapsed: frozenset(set(State) - {S.BACKING_OFF}),
    Stop: frozenset({S.STOPPING, S.STOPPED, S.CRASHED, S.EXITED, S.WAITING_FOR_CHANGE}),
    Restart: frozenset({S.STOPPING}),
}
ALLOWED: dict[type, frozenset[State]] = {
    kind: states | IGNORED.get(kind, frozenset()) for kind, states in ACTS.items()
}


# Events that only make sense with (True) or without (False) a live process.
NEEDS_PROCESS: dict[type, bool] = {
    Spawned: False,
    SpawnFailed: False,
    DependencyFailed: False,
    ProbePassed: True,
    ProbeGaveUp: True,
    Exited: True,
}


def decide(record: Record, event: Event, now: float, rule: RestartRule) -> Decision:
    """The next record and the actions to carry out, for `event` arriving at `now`."""
    allowed = ALLOWED[type(event)]
    if record.state not in allowed:
        names = ", ".join(sorted(state.value for state in allowed))
        raise IllegalTransition(
            f"{type(event).__name__} is not allowed in state {record.state.value}; only in: {names}"
        )
    needs_alive = NEEDS_PROCESS.get(type(event))
    if needs_alive is not None and record.alive != needs_alive:
        having = "with" if needs_alive else "without"
        raise IllegalTransition(f"{type(event).__name__} is only allowed {having} a process")
    # What a request says about the future holds even where it changes nothing now.
    if isinstance(event, Start):
        record = replace(record, held=False)
    elif isinstance(event, Stop):
        record = replace(record, held=record.held or event.hold, pending=False)
    if record.state in IGNORED.get(type(event), ()):
        return Decision(record)
    if isinstance(event, Exited):
        return _exited(record, event.code, now, rule)
    if isinstance(event, DependencyFailed):
        message = f"not started: {event.reason}"
        failed = replace(record, state=S.CRASHED, pending=False, detail="")
        return Decision(failed, (Say(message, "error"),))
    if isinstance(event, Spawned):
        return _spawned(record, event.started_at, now, rule)
    if isinstance(event, Restart):
        return _restart(record, event.reason, now, rule)
    return _HANDLERS[type(event)](record, now, rule)


def _start(record: Record, now: float, rule: RestartRule) -> Decision:
    actions: tuple[Action, ...] = (Spawn(),)
    if record.state is S.BACKING_OFF:
        actions = (CancelRestart(), Spawn())
    starting = replace(record, state=S.STARTING, failures=0, ready=False, pending=True)
    return Decision(starting, actions)


def _spawned(record: Record, started_at: float | None, now: float, rule: RestartRule) -> Decision:
    spawned = replace(
        record, alive=True, spawns=record.spawns + 1, up_since=now, started_at=started_at
    )
    if rule.has_probe:
        probing = replace(
            spawned, state=S.STARTING, ready=False, detail="waiting for its ready probe"
        )
        return Decision(probing, (StartProbe(),))
    return Decision(replace(spawned, state=S.RUNNING, ready=True))


def _spawn_failed(record: Record, now: float, rule: RestartRule) -> Decision:
    return _after_failure(replace(record, up_since=None), "could not start", now, rule)


def _probe_passed(record: Record, now: float, rule: RestartRule) -> Decision:
    return Decision(replace(record, state=S.READY, ready=True, detail=""))


def _probe_gave_up(record: Record, now: float, rule: RestartRule) -> Decision:
    return Decision(replace(record, state=S.RUNNING, ready=False))


def _backoff_elapsed(record: Record, now: float, rule: RestartRule) -> Decision:
    how = describe_exit(record.last_exit) if record.last_exit is not None else "ended"
    reason = f"{how} (restart: {rule.mode})"  # the policy's restart, said in `ps`
    starting = replace(record, state=S.STARTING, ready=False, pending=True, reason=reason)
    return Decision(starting, (Spawn(),))


def _stop(record: Record, now: float, rule: RestartRule) -> Decision:
    if record.state is S.BACKING_OFF:
        return Decision(replace(record, state=S.STOPPED), (CancelRestart(),))
    if not record.alive:  # still waiting for its dependencies: nothing to stop
        return Decision(replace(record, state=S.STOPPED, ready=False))
    # A restart already stopping it just becomes a stop: no new instance afterwards.
    actions: tuple[Action, ...] = () if record.state is S.RESTARTING else (StopProcess(),)
    return Decision(replace(record, state=S.STOPPING, ready=False), actions)


def _restart(record: Record, reason: str, now: float, rule: RestartRule) -> Decision:
    if record.state is S.RESTARTING:
        return Decision(record)  # coalesce: the coming instance starts after this request
    if record.state is S.STARTING and not record.alive:
        return Decision(record)  # not spawned yet: it will start with what is current
    record = replace(record, held=False, reason=reason or record.reason)
    said: tuple[Action, ...] = (Say(f"restarting: {reason}"),) if reason else ()
    if record.alive:
        restarting = replace(record, state=S.RESTARTING, ready=False)
        return Decision(restarting, (*said, StopProcess()))
    started = _start(record, now, rule)
    return Decision(started.record, (*said, *started.actions))


def _exited(record: Record, code: int, now: float, rule: RestartRule) -> Decision:
    ended = replace(record, alive=False, ready=False, last_exit=code, detail="", started_at=None)
    if record.state is S.STOPPING:
        return Decision(replace(ended, state=S.STOPPED, up_since=None), (Say("stopped"),))
    if record.state is S.RESTARTING:
        restarted = replace(ended, state=S.STARTING, failures=0, pending=True)
        return Decision(restarted, (Spawn(),))
    if record.up_since is not None and now - record.up_since >= STABLE_AFTER:
        ended = replace(ended, failures=0)
    if code == 0:
        if rule.mode == "always":
            return _restart_later(ended, describe_exit(code), rule)
        return Decision(replace(ended, state=S.EXITED), (Say(describe_exit(code)),))
    return _after_failure(ended, describe_exit(code), now, rule)


def _after_failure(record: Record, what: str, now: float, rule: RestartRule) -> Decision:
    # With `watch:`, a failure before the run was stable is taken for the code's (a
    # SyntaxError): restarting would only run it again. Issue 11 §5.
    quick = record.up_since is None or now - record.up_since < STABLE_AFTER
    if rule.mode != "no" and not (rule.watch and quick):
        return _restart_later(record, what, rule)
    if rule.watch:
        return Decision(
            replace(record, state=S.WAITING_FOR_CHANGE),
            (Say(f"{what}, waiting for a change to restart", "error"),),
        )
    return Decision(replace(record, state=S.CRASHED), (Say(what, "error"),))


def _restart_later(record: Record, what: str, rule: RestartRule) -> Decision:
    failed = record.last_exit != 0
    level: Level = "error" if failed else "info"
    if rule.max_restarts is not None and record.failures >= rule.max_restarts:
        gave_up = f"{what}, giving up after {record.failures} restarts"
        if not failed:
            return Decision(replace(record, state=S.EXITED), (Say(gave_up, level),))
        end = S.WAITING_FOR_CHANGE if rule.watch else S.CRASHED
        if rule.watch:
            gave_up += "; waiting for a change to restart"
        return Decision(replace(record, state=end), (Say(gave_up, level),))
    delay = backoff_delay(record.failures)
    return Decision(
        replace(record, state=S.BACKING_OFF, failures=record.failures + 1),
        (Say(f"{what}, restarting in {delay:g}s", level), ScheduleRestart(delay)),
    )


_HANDLERS = {
    Start: _start,
    SpawnFailed: _spawn_failed,
    ProbePassed: _probe_passed,
    ProbeGaveUp: _probe_gave_up,
    BackoffElapsed: _backoff_elapsed,
    Stop: _stop,
}


def backoff_delay(failures: int) -> float:
    """Seconds before restart number `failures + 1` in a row: 1, 2, 4, ... capped at 30."""
    return min(BACKOFF_FIRST * 2 ** min(failures, 16), BACKOFF_CAP)


def describe_exit(code: int) -> str:
    """`exited 1`, or `killed by SIGKILL` for a negative status."""
    if code >= 0:
        return f"exited {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


def condition_met(record: Record, condition: str) -> bool:
    """Whether a dependency in `record` lets a dependent with `condition` start.

    A dependency that already completed (exited 0) meets every condition: a one-shot
    service may finish before its dependents are looked at.
    """
    if record.state is S.EXITED:
        return True
    if condition == "started":
        return record.alive
    if condition == "ready":
        return record.ready
    return False  # completed: only once it ended on its own with status 0


def condition_failed(record: Record) -> bool:
    """Whether a dependency ended in a way no condition can be met by, short of a restart.

    Waiting for a change is not failed: the watcher may start it again.
    """
    return record.state in (S.CRASHED, S.STOPPED)
