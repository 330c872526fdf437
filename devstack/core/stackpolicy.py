"""The life of a whole stack: every decision the supervisor carries out.

`step(stack, event, now)` is pure: it returns the next `Stack` and the `Action`s the
supervisor must perform, in order (the vocabulary is core/stackmodel.py). Each
service's own life goes through `policy.decide`; this module adds what needs the
other services: the start order, waiting for dependencies to meet their conditions,
failing a service whose dependency can never meet it, restarting dependents
(`restart_dependents: true`), stopping in reverse order on shutdown, --abort-on-exit,
when the stack has ended and with what status, what a config reload restarts, and
what a command waits for.

A step costs what the event touches, not the size of the stack (issue 16): the
records are a persistent map (core/records.py) that counts what is asked of all of
them, and after an event only the services it changed are looked at again, with those
whose decision depends on them (their dependents waiting to start; during a shutdown,
their dependencies waiting for them to be gone). A reload or a shutdown's first step
looks at every service, as it touches them all.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

from devstack.core import policy
from devstack.core.errors import Location
from devstack.core.graph import start_order, with_dependencies
from devstack.core.model import Service
from devstack.core.policy import Level, Record, RestartRule, State
from devstack.core.records import Records
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
    Stack,
    StackEvent,
    StartCommand,
    StopCommand,
    WaitFor,
    WatchProbe,
    Wiring,
)

# Fields of a service whose change needs a new process; the others apply in place.
PROCESS_FIELDS = ("cmd", "cwd", "tty", "port", "ready")
UNSETTLED = frozenset({State.STARTING, State.RESTARTING, State.STOPPING})
FAILED = frozenset({State.CRASHED, State.WAITING_FOR_CHANGE})


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
    """One step's work on a stack: the latest version of its parts, and what it did."""

    stack: Stack
    now: float
    records: Records = field(init=False)
    configs: Mapping[str, Service] = field(init=False)
    wiring: Wiring = field(init=False)
    actions: list[Action] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)  # whose record this step changed
    # Every service is looked at again: the run or its configs changed, or the stack
    # came without its wiring (built by hand).
    everything: bool = False

    def __post_init__(self) -> None:
        self.records, self.configs = self.stack.records, self.stack.configs
        wiring = self.stack.wiring
        if wiring is None or not wiring.fits(self.stack):
            wiring, self.everything = Wiring.of(self.stack.services, self.configs), True
        self.wiring = wiring

    def result(self) -> Stack:
        return replace(self.stack, records=self.records, configs=self.configs, wiring=self.wiring)

    def put(self, name: str, record: Record) -> None:
        self.records = self.records.set(name, record)
        self.touched.add(name)

    def rewire(self, records: Records, configs: Mapping[str, Service]) -> None:
        """The run's services or their configs changed: work out who depends on whom."""
        self.records, self.configs = records, configs
        self.wiring = Wiring.of(self.stack.services, configs)
        self.everything = True

    def say(self, name: str | None, message: str, level: Level = "info") -> None:
        self.actions.append(Announce(name, message, level))

    def handle(self, event: StackEvent) -> None:
        if isinstance(event, Boot):
            for name in self.wiring.order:
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
            configs = {n: event.services.get(n, config) for n, config in self.configs.items()}
            self.rewire(self.records, configs)
        elif isinstance(event, AddServices):
            for name in event.names:
                self.add(name)
                self.say(name, event.message)
        elif isinstance(event, ForgetServices):
            configs = dict(self.configs)
            for name in event.names:
                del configs[name]
                self.actions.append(RemoveOutput(name))
            self.rewire(self.records.without(event.names), configs)
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
            self.put(name, record := replace(record, spawning=False))
            if record.state is not State.STARTING or record.alive:
                # Stopped (or shut down) while it was being spawned: it must not survive.
                self.actions.append(Discard(name))
                return
            self.actions.append(Adopt(name))
            self.put(name, replace(record, spawn_error=""))
            self.feed(name, policy.Spawned(event.started_at))
        elif isinstance(event, SpawnError):
            self.say(name, event.why, "error")
            # `ps` and `devstack restart` say why; its dependents are told so too.
            failed = replace(record, spawning=False, spawn_error=event.cause, detail=event.cause)
            self.put(name, record := failed)
            if record.state is State.STARTING and not record.alive:
                self.feed(name, policy.SpawnFailed())
        elif isinstance(event, SpawnAbandoned):
            self.put(name, replace(record, spawning=False))
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
        self.put(name, replace(record, detail=f"not ready: {event.why}"))
        self.say(name, f"not ready after {event.timeout:g}s: {event.why}")
        self.feed(name, policy.ProbeGaveUp())
        for other in self.dependents(name):
            if self.records[other].pending:
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
        self.put(name, new)
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
        configs = {**self.configs, name: self.stack.services[name]}
        self.rewire(self.records.added(name, Record()), configs)
        self.actions.append(AddOutput(name))

    def dependents(self, name: str) -> tuple[str, ...]:
        """The services of the run that depend on `name`, in run order."""
        return self.wiring.dependents.get(name, ())

    # -- commands -----------------------------------------------------------------------

    def start(self, names: Iterable[str]) -> None:
        if self.stack.shutting_down:
            return
        edges = self.wiring.edges
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
        dependents = [other for other in self.dependents(name) if self.records[other].alive]
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
        for name in list(self.records):  # each is touched: looked at again below
            record = self.records[name]
            self.put(name, replace(record, pending=False))
            if not record.alive:
                self.feed(name, policy.Stop(hold=False))

    def stop_in_reverse_order(self) -> None:
        """Stop each service once everything depending on it is gone, in run order.

        Only those whose dependents changed are looked at; any other is as it was at
        the end of the previous step. One pass does it: a stop frees no dependency at
        once (a process is stopping until it exits; a service without one was gone
        already), so the exit that does comes as an event of its own.
        """
        for name in sorted(self.looked_at(self.dependencies), key=self.records.position):
            if all(gone(self.records[other]) for other in self.dependents(name)):
                self.feed(name, policy.Stop(hold=False))

    def looked_at(self, neighbours: Callable[[str], Iterable[str]]) -> Iterable[str]:
        """The services this step touched and their `neighbours`; every one after a reload."""
        if self.everything:
            return self.records
        return {*self.touched, *(other for name in self.touched for other in neighbours(name))}

    def dependencies(self, name: str) -> list[str]:
        """What `name` depends on among the services of the run."""
        return [d for d in dict.fromkeys(self.configs[name].dependency_names) if d in self.records]

    # -- after every event --------------------------------------------------------------

    def settle(self) -> None:
        """Start what may start now, stop what may stop now, notice the end."""
        if self.stack.shutting_down:
            if not self.stack.finished:
                self.stop_in_reverse_order()
                if self.records.tally.present == 0:
                    self.finish()
        else:
            self.start_pending()
        tally = self.records.tally
        if not self.stack.first_spawns_done and tally.spawning == 0:
            self.stack = replace(self.stack, first_spawns_done=True)
            self.actions.append(FirstSpawnsDone())
        if (
            not self.stack.shutting_down
            and not self.stack.finished
            and self.records
            and tally.unended == 0
        ):
            self.finish()

    def finish(self) -> None:
        self.stack = replace(self.stack, finished=True)
        self.actions.append(Finish())

    def start_pending(self) -> None:
        """Launch what waits to start and may now, in start order.

        Only the services this step changed, and their dependents, are looked at: any
        other that waits still waits for what it waited for at the end of the previous
        step. A dependency comes before its dependents in start order, so one that fails
        or is launched is seen by its dependents when their turn comes.
        """
        if not self.records.tally.waiting:
            return  # the usual case after a change: nothing waits to start
        rank = self.wiring.rank
        queue = [(rank[name], name) for name in self.looked_at(self.dependents) if name in rank]
        queued = {name for _, name in queue}
        heapq.heapify(queue)
        while queue:
            _, name = heapq.heappop(queue)
            record = self.records[name]
            if not record.pending or record.spawning:
                continue
            self.try_start(name, record)
            if self.records[name] is record:
                continue
            for other in self.dependents(name):
                if other not in queued and other in rank:
                    queued.add(other)
                    heapq.heappush(queue, (rank[other], other))

    def try_start(self, name: str, record: Record) -> None:
        """Launch `name` if its dependencies allow, else fail it or say what it waits for."""
        unmet, failed = self.unmet_dependencies(name)
        if failed:
            self.feed(name, policy.DependencyFailed(failed))
        elif unmet:
            waiting = f"waiting for {unmet}"
            if waiting != record.detail:
                self.put(name, replace(record, detail=waiting))
                self.say(name, waiting)
        else:
            self.put(name, replace(record, pending=False, spawning=True, detail=""))
            self.actions.append(Launch(name))

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


def _shutdown_message(signum: int) -> str:
    import signal

    words = {signal.SIGINT: "Ctrl+C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
    word = words.get(signal.Signals(signum), signal.Signals(signum).name)
    again = " (Ctrl+C again to kill them now)" if signum == signal.SIGINT else ""
    return f"{word}: stopping all services{again}"
