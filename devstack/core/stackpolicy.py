"""The life of a whole stack as data: every decision the supervisor carries out.

`step(stack, event, now)` is pure: it returns the next `Stack` and the `Action`s the
supervisor must perform, in order. Each service's own life goes through
`policy.decide`; this module adds what needs the other services: the start order,
waiting for dependencies to meet their conditions, failing a service whose
dependency can never meet it, restarting dependents (`restart_dependents: true`),
stopping in reverse order on shutdown, --abort-on-exit, when the stack has ended and
with what status, what a config reload restarts, and what a command waits for.

Events come from the loop: what happened to a process (spawned, could not be, its
probe finished, it exited), a timer, or a request (a command from a client of the
running stack, a shutdown). A request that is already met is a legal no-op, never a
check the caller makes first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from devstack.core import policy
from devstack.core.errors import Location
from devstack.core.graph import start_order, with_dependencies
from devstack.core.model import Service
from devstack.core.policy import Level, Record, RestartRule, State

# Fields of a service whose change needs a new process; the others apply in place.
PROCESS_FIELDS = ("cmd", "cwd", "tty", "port", "ready")
UNSETTLED = frozenset({State.STARTING, State.RESTARTING, State.STOPPING})
FAILED = frozenset({State.CRASHED, State.WAITING_FOR_CHANGE})


@dataclass(frozen=True)
class Stack:
    """Everything the supervisor knows about a run, but its processes and timers."""

    services: Mapping[str, Service]  # the current project's, in file order
    configs: Mapping[str, Service]  # the services of this run: the config each runs with
    records: Mapping[str, Record]  # where each service of this run is in its life
    abort_on_exit: bool = False
    shutdown_requests: int = 0
    shutdown_signal: int | None = None
    internal_errors: int = 0
    first_spawns_done: bool = False
    finished: bool = False

    @classmethod
    def of(
        cls, services: Mapping[str, Service], names: Iterable[str], abort_on_exit: bool = False
    ) -> Stack:
        names = list(names)
        return cls(
            services=services,
            configs={name: services[name] for name in names},
            records={name: Record() for name in names},
            abort_on_exit=abort_on_exit,
        )

    @property
    def shutting_down(self) -> bool:
        """Stopping for good (Ctrl+C, a signal, `down`, --abort-on-exit)."""
        return self.shutdown_requests > 0


# -- events -------------------------------------------------------------------------


@dataclass(frozen=True)
class Boot:
    """Start every service of the run, in start order."""


@dataclass(frozen=True)
class StartCommand:
    """Start `names` and what they depend on (`devstack start`), adding any not in the run."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class StopCommand:
    """Stop `names` for good, until started again (`devstack stop`, removed services)."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class RestartCommand:
    """Restart `names` now (`devstack restart`, `r`, a watched file changed)."""

    names: tuple[str, ...]
    reason: str
    # A change, or `r` alone: what was stopped on purpose stays stopped.
    skip_stopped: bool = False


@dataclass(frozen=True)
class ConfigChanged:
    """A reload changed the command or environment of these services (name, reason)."""

    reasons: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Reconfigure:
    """A reload's new services; each of the run takes its new config."""

    services: Mapping[str, Service]


@dataclass(frozen=True)
class AddServices:
    names: tuple[str, ...]
    message: str


@dataclass(frozen=True)
class ForgetServices:
    """Stopped and removed from the config: no longer part of the run."""

    names: tuple[str, ...]


@dataclass(frozen=True)
class SpawnDone:
    name: str
    started_at: float  # wall-clock time


@dataclass(frozen=True)
class SpawnError:
    name: str
    why: str  # "port 3000 is in use by node (pid 12)", "could not start bun: ..."
    cause: str = ""  # "could not start: ...": kept for `ps` and told to its dependents


@dataclass(frozen=True)
class SpawnAbandoned:
    """A spawn cut short by a bug (reported apart) or a cancellation: not spawning now."""

    name: str


@dataclass(frozen=True)
class ProbeDone:
    name: str
    instance: int  # the record's `spawns` when the probe started: a late answer is dropped
    passed: bool
    why: str = ""  # why it is not ready
    timeout: float = 0.0


@dataclass(frozen=True)
class ProcessExited:
    """Its process exited, and whatever it left in its group is gone too."""

    name: str
    code: int


@dataclass(frozen=True)
class BackoffDone:
    name: str


@dataclass(frozen=True)
class InternalError:
    """A bug was caught and reported: everything stops, and `up` exits 1 (issue 11 §4)."""


@dataclass(frozen=True)
class ShutdownRequested:
    """A signal, `devstack down`, a bug; a second request kills everything at once."""

    signum: int | None = None


StackEvent = (
    Boot
    | StartCommand
    | StopCommand
    | RestartCommand
    | ConfigChanged
    | Reconfigure
    | AddServices
    | ForgetServices
    | SpawnDone
    | SpawnError
    | SpawnAbandoned
    | ProbeDone
    | ProcessExited
    | BackoffDone
    | InternalError
    | ShutdownRequested
)

# -- actions ------------------------------------------------------------------------


@dataclass(frozen=True)
class Announce:
    """Say something: about a service (`name`), or about the stack (None)."""

    name: str | None
    message: str
    level: Level = "info"


@dataclass(frozen=True)
class Launch:
    """Spawn the service now: its dependencies meet their conditions."""

    name: str


@dataclass(frozen=True)
class Adopt:
    """The process just spawned is the service's current instance: await its exit."""

    name: str


@dataclass(frozen=True)
class Discard:
    """The process just spawned came too late (stopped meanwhile): stop it."""

    name: str


@dataclass(frozen=True)
class WatchProbe:
    name: str
    instance: int


@dataclass(frozen=True)
class Halt:
    """Stop the current instance: stop_signal to its group, stop_timeout, then SIGKILL."""

    name: str


@dataclass(frozen=True)
class SetTimer:
    name: str
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class AddOutput:
    """A service joins the run: its output gets a prefix and a log file."""

    name: str


@dataclass(frozen=True)
class RemoveOutput:
    name: str


@dataclass(frozen=True)
class WaitFor:
    """The command that caused this step returns once `names` are settled or gone."""

    names: tuple[str, ...]
    until: Literal["settled", "gone"]


@dataclass(frozen=True)
class FirstSpawnsDone:
    """What could start at once has been spawned (or failed to)."""


@dataclass(frozen=True)
class Finish:
    """The run is over: every service ended for good, or the shutdown completed."""


@dataclass(frozen=True)
class KillAll:
    pass


Action = (
    Announce
    | Launch
    | Adopt
    | Discard
    | WatchProbe
    | Halt
    | SetTimer
    | CancelTimer
    | AddOutput
    | RemoveOutput
    | WaitFor
    | FirstSpawnsDone
    | Finish
    | KillAll
)


def step(stack: Stack, event: StackEvent, now: float) -> tuple[Stack, list[Action]]:
    """The next stack and the actions to perform, for `event` arriving at `now`."""
    work = _Step(stack, now)
    work.handle(event)
    work.settle()
    return work.result(), work.actions


# -- what the loop and the clients ask about a stack ----------------------------------


def waited(stack: Stack, wait: WaitFor) -> bool:
    """Whether what a command waits for has come about (a forgotten service has)."""
    check = settled if wait.until == "settled" else gone
    return all(check(stack.records[name]) for name in wait.names if name in stack.records)


def settled(record: Record) -> bool:
    """Done with a start or stop: up (ready, if it has a probe), or ended."""
    return record.state not in UNSETTLED


def gone(record: Record) -> bool:
    """No process of it exists, and none is being spawned."""
    return not record.alive and not record.spawning


def exit_status(stack: Stack) -> int:
    """1 after an internal error, 128 + the signal that stopped the stack, 1 if a
    service failed, else 0."""
    if stack.internal_errors:
        return 1
    if stack.shutdown_signal is not None:
        return 128 + stack.shutdown_signal
    return 1 if any(record.state in FAILED for record in stack.records.values()) else 0


@dataclass(frozen=True)
class ReloadPlan:
    """What a new config and env mean for a running stack."""

    removed: tuple[str, ...] = ()
    restarts: tuple[tuple[str, str], ...] = ()  # (name, reason)
    added: tuple[str, ...] = ()


def plan_reload(
    stack: Stack,
    old_values: Mapping[str, Mapping[str, str]],
    services: Mapping[str, Service],
    new_values: Mapping[str, Mapping[str, str]],
    start_new_services: bool,
) -> ReloadPlan:
    """Stop removed services, restart those whose command or environment changed,
    start new ones (unless `up` was given names), keep the others running."""
    removed = tuple(name for name in stack.configs if name not in services)
    restarts = tuple(
        (name, reason)
        for name, config in stack.configs.items()
        if name in services
        and (reason := change_reason(config, old_values[name], services[name], new_values[name]))
    )
    added = tuple(
        name
        for name, service in services.items()
        if name not in stack.services and service.autostart and start_new_services
    )
    return ReloadPlan(removed, restarts, added)


def change_reason(
    old: Service, old_values: Mapping[str, str], new: Service, new_values: Mapping[str, str]
) -> str:
    """Why a service needs a new process under the new config, or "" if it does not."""
    changed_vars = sorted(
        key
        for key in old_values.keys() | new_values.keys()
        if old_values.get(key) != new_values.get(key)
    )
    changed_fields = [
        name
        for name in PROCESS_FIELDS
        if _without_locations(getattr(old, name)) != _without_locations(getattr(new, name))
    ]
    if changed_fields:
        return f"devstack.yaml changed ({', '.join(changed_fields)})"
    if changed_vars:
        return f"env changed ({', '.join(changed_vars)})"
    return ""


def _without_locations(value: object) -> object:
    # Editing one line of devstack.yaml shifts the line numbers of everything below it.
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return tuple(
            _without_locations(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if not isinstance(getattr(value, f.name), Location)
        )
    if isinstance(value, tuple):
        return tuple(_without_locations(item) for item in value)
    return value


# -- one step -------------------------------------------------------------------------


@dataclass
class _Step:
    """A working copy of a stack for the length of one step."""

    stack: Stack
    now: float
    records: dict[str, Record] = field(init=False)
    configs: dict[str, Service] = field(init=False)
    actions: list[Action] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.records = dict(self.stack.records)
        self.configs = dict(self.stack.configs)

    def result(self) -> Stack:
        return replace(self.stack, records=self.records, configs=self.configs)

    def say(self, name: str | None, message: str, level: Level = "info") -> None:
        self.actions.append(Announce(name, message, level))

    def handle(self, event: StackEvent) -> None:
        if isinstance(event, Boot):
            for name in self.order(self.records):
                self.feed(name, policy.Start())
        elif isinstance(event, StartCommand):
            self.start(event.names)
        elif isinstance(event, StopCommand):
            chosen = tuple(name for name in event.names if name in self.records)
            for name in chosen:
                self.feed(name, policy.Stop())
            self.actions.append(WaitFor(chosen, "gone"))
        elif isinstance(event, RestartCommand):
            if not self.stack.shutting_down:
                chosen = self.restart(event.names, event.reason, event.skip_stopped)
                self.actions.append(WaitFor(chosen, "settled"))
        elif isinstance(event, ConfigChanged):
            self.config_changed(event.reasons)
        elif isinstance(event, Reconfigure):
            self.stack = replace(self.stack, services=event.services)
            self.configs.update({n: event.services[n] for n in self.configs if n in event.services})
        elif isinstance(event, AddServices):
            for name in event.names:
                self.add(name)
                self.say(name, event.message)
        elif isinstance(event, ForgetServices):
            for name in event.names:
                del self.records[name], self.configs[name]
                self.actions.append(RemoveOutput(name))
        elif isinstance(event, ShutdownRequested):
            self.shutdown(event.signum)
        elif isinstance(event, InternalError):
            self.stack = replace(self.stack, internal_errors=self.stack.internal_errors + 1)
            self.shutdown(None)
        elif event.name in self.records:  # what happened to a process or a timer
            self.handle_process(event)

    def handle_process(
        self,
        event: SpawnDone | SpawnError | SpawnAbandoned | ProbeDone | ProcessExited | BackoffDone,
    ) -> None:
        name = event.name
        record = self.records[name]
        if isinstance(event, SpawnDone):
            self.records[name] = record = replace(record, spawning=False)
            if record.state is not State.STARTING or record.alive:
                # Stopped (or shut down) while it was being spawned: it must not survive.
                self.actions.append(Discard(name))
                return
            self.actions.append(Adopt(name))
            self.records[name] = replace(record, spawn_error="")
            self.feed(name, policy.Spawned(event.started_at))
        elif isinstance(event, SpawnError):
            self.say(name, event.why, "error")
            # `ps` and `devstack restart` say why; its dependents are told so too.
            failed = replace(record, spawning=False, spawn_error=event.cause, detail=event.cause)
            self.records[name] = record = failed
            if record.state is State.STARTING and not record.alive:
                self.feed(name, policy.SpawnFailed())
        elif isinstance(event, SpawnAbandoned):
            self.records[name] = replace(record, spawning=False)
        elif isinstance(event, ProbeDone):
            self.probe_done(event, record)
        elif isinstance(event, ProcessExited):
            self.feed(name, policy.Exited(event.code))
        else:
            self.feed(name, policy.BackoffElapsed())

    def probe_done(self, event: ProbeDone, record: Record) -> None:
        name = event.name
        if (
            record.spawns != event.instance
            or record.state is not State.STARTING
            or not record.alive
        ):
            return  # the answer about an instance that is gone, or a stop came first
        if event.passed:
            self.say(name, "ready")
            self.feed(name, policy.ProbePassed())
            return
        self.records[name] = replace(record, detail=f"not ready: {event.why}")
        self.say(name, f"not ready after {event.timeout:g}s: {event.why}")
        self.feed(name, policy.ProbeGaveUp())
        for other, config in self.configs.items():
            if self.records[other].pending and name in config.dependency_names:
                self.say(other, f"still waiting for {name} to be ready", "warn")

    # -- one service --------------------------------------------------------------------

    def feed(self, name: str, event: policy.Event) -> None:
        """One event through the service's own state machine, and what follows from it."""
        record = self.records[name]
        ended_on_its_own = isinstance(event, policy.Exited) and record.state not in (
            State.STOPPING,
            State.RESTARTING,
        )
        decision = policy.decide(record, event, self.now, self.rule(name))
        new = decision.record
        if self.stack.shutting_down:
            new = replace(new, pending=False)  # nothing starts while the stack goes down
        self.records[name] = new
        for action in decision.actions:
            self.translate(name, action)
        if new.ready and not record.ready and new.restarts:
            self.restart_dependents(name)
        if ended_on_its_own and self.stack.abort_on_exit and not self.stack.shutting_down:
            self.say(None, f"{name} ended, stopping everything (--abort-on-exit)", "warn")
            self.shutdown(None)

    def translate(self, name: str, action: policy.Action) -> None:
        if isinstance(action, policy.Say):
            self.say(name, action.message, action.level)
        elif isinstance(action, policy.StartProbe):
            self.actions.append(WatchProbe(name, self.records[name].spawns))
        elif isinstance(action, policy.StopProcess):
            self.actions.append(Halt(name))
        elif isinstance(action, policy.ScheduleRestart):
            self.actions.append(SetTimer(name, action.delay))
        elif isinstance(action, policy.CancelRestart):
            self.actions.append(CancelTimer(name))
        # policy.Spawn: the record is pending now; `start_pending` launches it

    def rule(self, name: str) -> RestartRule:
        rule = RestartRule.of(self.configs[name])
        if self.stack.shutting_down or self.stack.abort_on_exit:
            # Nothing restarts while the stack goes down.
            return replace(rule, mode="no", watch=False)
        return rule

    def add(self, name: str) -> None:
        self.records[name] = Record()
        self.configs[name] = self.stack.services[name]
        self.actions.append(AddOutput(name))

    # -- commands -----------------------------------------------------------------------

    def start(self, names: Iterable[str]) -> None:
        if self.stack.shutting_down:
            return
        edges = self.edges()
        chosen = start_order(edges, with_dependencies(edges, names))
        for name in chosen:
            if name not in self.records:
                self.add(name)
            self.feed(name, policy.Start())
        self.actions.append(WaitFor(tuple(chosen), "settled"))

    def restart(
        self, names: Iterable[str], reason: str, skip_stopped: bool = False
    ) -> tuple[str, ...]:
        """Restart what of `names` is in the run; those names."""
        chosen = tuple(name for name in names if name in self.records)
        for name in chosen:
            # Stopped on request (`devstack stop`): stays stopped until started again.
            if not (skip_stopped and self.records[name].state is State.STOPPED):
                self.feed(name, policy.Restart(reason))
        return chosen

    def config_changed(self, reasons: Iterable[tuple[str, str]]) -> None:
        if self.stack.shutting_down:
            return
        restarted: list[str] = []
        for name, reason in reasons:
            record = self.records.get(name)
            # A crashed service waiting for a change: a config change is one.
            if record and (record.alive or record.state is State.WAITING_FOR_CHANGE):
                restarted += self.restart([name], reason)
        self.actions.append(WaitFor(tuple(restarted), "settled"))

    def restart_dependents(self, name: str) -> None:
        """`restart_dependents: true`: once it is ready again, so are they, afresh."""
        if not self.configs[name].restart_dependents or self.stack.shutting_down:
            return
        dependents = [
            other
            for other, config in self.configs.items()
            if name in config.dependency_names and self.records[other].alive
        ]
        for other in dependents:
            self.feed(other, policy.Restart(f"{name} restarted"))

    # -- shutting down ------------------------------------------------------------------

    def shutdown(self, signum: int | None) -> None:
        requests = self.stack.shutdown_requests + 1
        if requests > 1:
            self.stack = replace(self.stack, shutdown_requests=requests)
            self.say(None, "killing all services now", "warn")
            self.actions.append(KillAll())
            return
        self.stack = replace(self.stack, shutdown_requests=1, shutdown_signal=signum)
        if signum is not None:
            self.say(None, _shutdown_message(signum), "warn")
        for name, record in self.records.items():
            self.records[name] = replace(record, pending=False)
            if not record.alive:
                self.feed(name, policy.Stop(hold=False))

    def stop_in_reverse_order(self) -> None:
        """Stop each service once everything depending on it is gone."""
        before = None
        while before != self.records:  # one stopped at once may free its dependencies
            before = dict(self.records)
            for name in before:
                dependents = [o for o, c in self.configs.items() if name in c.dependency_names]
                if all(gone(self.records[other]) for other in dependents):
                    self.feed(name, policy.Stop(hold=False))

    # -- after every event --------------------------------------------------------------

    def settle(self) -> None:
        """Start what may start now, stop what may stop now, notice the end."""
        if self.stack.shutting_down:
            if not self.stack.finished:
                self.stop_in_reverse_order()
                if all(gone(record) for record in self.records.values()):
                    self.finish()
        else:
            self.start_pending()
        if not self.stack.first_spawns_done and not any(
            record.spawning for record in self.records.values()
        ):
            self.stack = replace(self.stack, first_spawns_done=True)
            self.actions.append(FirstSpawnsDone())
        if (
            not self.stack.shutting_down
            and not self.stack.finished
            and self.records
            and all(
                record.state in policy.ENDED_FOR_GOOD and not record.held
                for record in self.records.values()
            )
        ):
            self.finish()

    def finish(self) -> None:
        self.stack = replace(self.stack, finished=True)
        self.actions.append(Finish())

    def start_pending(self) -> None:
        # A dependency failing can make its dependents fail in turn: repeat until stable.
        changed = True
        while changed:
            changed = False
            if not any(r.pending and not r.spawning for r in self.records.values()):
                return  # the usual case after a change: no need to work out the order
            for name in self.order(self.records):
                record = self.records[name]
                if record.pending and not record.spawning:
                    changed |= self.try_start(name, record)

    def try_start(self, name: str, record: Record) -> bool:
        """Launch `name` if its dependencies allow; True if its state changed."""
        unmet, failed = self.unmet_dependencies(name)
        if failed:
            self.feed(name, policy.DependencyFailed(failed))
            return True
        if unmet:
            waiting = f"waiting for {unmet}"
            if waiting != record.detail:
                self.records[name] = replace(record, detail=waiting)
                self.say(name, waiting)
            return False
        self.records[name] = replace(record, pending=False, spawning=True, detail="")
        self.actions.append(Launch(name))
        return False

    def unmet_dependencies(self, name: str) -> tuple[str, str]:
        """("db (ready), jobs (started)", "") or ("", "db exited 1")."""
        unmet = []
        for dependency in self.configs[name].depends_on:
            other = self.records.get(dependency.name)
            if other is None:
                continue  # not part of this run (--no-deps): nothing to wait for
            if policy.condition_failed(other):
                last = other.last_exit
                how = policy.describe_exit(last) if last is not None else other.state
                # The real cause, not "crashed", for a service that never ran (issue 11 §5).
                return "", f"{dependency.name} {other.spawn_error or how}"
            if not policy.condition_met(other, dependency.condition):
                unmet.append(f"{dependency.name} ({dependency.condition})")
        return ", ".join(unmet), ""

    def edges(self) -> dict[str, tuple[str, ...]]:
        return {name: s.dependency_names for name, s in self.stack.services.items()}

    def order(self, names: Iterable[str]) -> list[str]:
        return start_order(self.edges(), names)


def _shutdown_message(signum: int) -> str:
    import signal

    words = {signal.SIGINT: "Ctrl+C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
    word = words.get(signal.Signals(signum), signal.Signals(signum).name)
    again = " (Ctrl+C again to kill them now)" if signum == signal.SIGINT else ""
    return f"{word}: stopping all services{again}"
