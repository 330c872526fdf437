"""The stack policy's step as it was before issue 16 (devstack/core/stackpolicy.py at
commit ba12913): every record copied on each event, every service scanned for each
decision. Kept unchanged but for its imports and its own `Stack` (the old one, with
plain dicts), as the reference the faster `stackpolicy.step` must agree with
(tests/unit/core/test_stackpolicy.py), and as the "before" of `python -m bench policy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from devstack.core import policy
from devstack.core.graph import start_order, with_dependencies
from devstack.core.model import Service
from devstack.core.policy import Level, Record, RestartRule, State
from devstack.core.stackmodel import (
    Action,
    AddOutput,
    AddServices,
    Adopt,
    Announce,
    BackoffDone,
    Boot,
    CancelTimer,
    ConfigChanged,
    Discard,
    Finish,
    FirstSpawnsDone,
    ForgetServices,
    Halt,
    InternalError,
    KillAll,
    Launch,
    ProbeDone,
    ProcessExited,
    Reconfigure,
    RemoveOutput,
    RestartCommand,
    SetTimer,
    ShutdownRequested,
    SpawnAbandoned,
    SpawnDone,
    SpawnError,
    StackEvent,
    StartCommand,
    StopCommand,
    WaitFor,
    WatchProbe,
)
from devstack.core.stackpolicy import _shutdown_message, gone


@dataclass(frozen=True)
class Stack:
    """The stack as it was: plain mappings."""

    services: Mapping[str, Service]
    configs: Mapping[str, Service]
    records: Mapping[str, Record]
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
        return self.shutdown_requests > 0


def step(stack: Stack, event: StackEvent, now: float) -> tuple[Stack, list[Action]]:
    work = _Step(stack, now)
    work.handle(event)
    work.settle()
    return work.result(), work.actions


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
