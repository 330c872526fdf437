"""The one loop that runs a stack: starts, stops and restarts services.

Every change in a service's life goes through `policy.decide`; the supervisor only
carries out the actions it returns (spawn once the dependencies meet their conditions,
stop with escalation, wait before a restart, say something). It awaits events (a
process exiting, a probe finishing, a timer, a shutdown request) and never polls.

The file watcher and the control socket drive it through `restart`, `start`, `stop`,
`apply`, `status` and `request_shutdown`; signal handlers only call
`request_shutdown`, which records the request for the loop to act on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from devstack import policy
from devstack.errors import DevstackError, Location, unknown_name_error
from devstack.graph import start_order, with_dependencies
from devstack.model import Project, Service
from devstack.policy import Record, RestartRule, State
from devstack.scripts import service_ports

if TYPE_CHECKING:
    from devstack.envresolve import ProjectEnv
    from devstack.runtime import probes
    from devstack.runtime.output import Output
    from devstack.runtime.process import ServiceProcess

SpawnFunction = Callable[..., Awaitable["ServiceProcess"]]
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SIGNAL_WORDS = {signal.SIGINT: "Ctrl+C", signal.SIGTERM: "SIGTERM", signal.SIGHUP: "SIGHUP"}
# Fields of a service whose change needs a new process; the others apply in place.
PROCESS_FIELDS = ("cmd", "cwd", "tty", "port", "ready")
UNSETTLED = frozenset({State.STARTING, State.RESTARTING, State.STOPPING})


@dataclass(frozen=True)
class ServiceStatus:
    """One row of `devstack ps`."""

    name: str
    state: str
    pid: int | None
    started_at: float | None  # wall-clock time the current instance started
    restarts: int
    last_exit: int | None
    port: int | None
    detail: str = ""  # "waiting for db (ready)", why it is not ready, ...
    reason: str = ""  # why it last restarted: "tasks/a.py changed", "exited 1 (restart: always)"


@dataclass(eq=False)
class _Unit:
    """The supervisor's working state for one service."""

    service: Service
    env: dict[str, str]
    record: Record = field(default_factory=Record)
    process: ServiceProcess | None = None
    pending: bool = False  # wants to spawn once its dependencies allow
    restart_reason: str = ""  # why it last restarted, for `ps`
    spawning: bool = False
    held: bool = False  # stopped on request: does not count as ended for good
    detail: str = ""
    spawn_error: str = ""  # why its last start failed: what its dependents are told
    started_at: float | None = None
    restart_timer: asyncio.TimerHandle | None = None
    probe_task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[int] | None = None

    @property
    def name(self) -> str:
        return self.service.name


class Supervisor:
    def __init__(
        self,
        project: Project,
        env: ProjectEnv,
        names: Sequence[str],
        *,
        output: Output,
        run_id: str,
        colour: bool = False,
        abort_on_exit: bool = False,
        start_new_services: bool = True,
        spawn: SpawnFunction | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.project = project
        self.env = env
        self.output = output
        self.run_id = run_id
        self.colour = colour
        self.abort_on_exit = abort_on_exit
        self.start_new_services = start_new_services
        self._spawn_process = spawn
        self._clock = clock
        self._wall_clock = wall_clock
        self.units: dict[str, _Unit] = {}
        for name in names:
            self._add_unit(project.services[name], env)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._shutdown_signal: int | None = None
        self._shutdown_requests = 0
        self._shutdown_wanted = asyncio.Event()
        self._kill_wanted = asyncio.Event()
        self._shutting_down = False
        self._finished = asyncio.Event()
        self._exiting: set[ServiceProcess] = set()  # ended; leftovers of its group going
        # Set once the services that could start at once have been spawned (or failed
        # to): what runs beside the supervisor and is not needed before (the watcher)
        # waits for it, so that its start does not hold up the services' first lines.
        self.first_spawns_done = asyncio.Event()
        self.internal_errors = 0  # bugs caught and reported: `up` exits non-zero
        self._state_subscribers: list[Callable[[ServiceStatus], None]] = []
        self._published: dict[str, ServiceStatus] = {}  # what subscribers last heard

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until every service ended for good, or a shutdown finished; the exit status."""
        loop = asyncio.get_running_loop()
        for signum in SHUTDOWN_SIGNALS:
            loop.add_signal_handler(signum, self.request_shutdown, signum)
        watchers = [
            self._track(self._shutdown_when_asked()),
            self._track(self._kill_when_asked()),
        ]
        try:
            for name in self._order(self.units):
                self._handle(self.units[name], policy.Start())
            self._settle()
            await self._finished.wait()
        except BaseException:
            self._kill_everything()  # a bug or a cancellation must not leave services behind
            raise
        finally:
            for signum in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(signum)
            for task in watchers:
                task.cancel()
            await self._drain()
        return self._exit_status()

    @property
    def shutting_down(self) -> bool:
        """Stopping for good (Ctrl+C, a signal, `down`, --abort-on-exit)."""
        return self._shutting_down

    def request_shutdown(self, signum: int | None = None) -> None:
        """Record a shutdown request (a signal handler, `devstack down`); the loop acts.

        A second request kills everything at once.
        """
        self._shutdown_requests += 1
        if self._shutdown_requests == 1:
            self._shutdown_signal = signum
            self._shutdown_wanted.set()
        else:
            self._kill_wanted.set()

    def _handle(self, unit: _Unit, event: policy.Event) -> None:
        """Feed one event to the policy and carry out what it decides."""
        ended_on_its_own = isinstance(event, policy.Exited) and unit.record.state not in (
            State.STOPPING,
            State.RESTARTING,
        )
        was_ready = unit.record.ready
        decision = policy.decide(unit.record, event, self._clock(), self._rule(unit))
        unit.record = decision.record
        for action in decision.actions:
            self._act(unit, action)
        if unit.record.ready and not was_ready and unit.record.restarts:
            self._restart_dependents(unit)
        if ended_on_its_own and self.abort_on_exit and not self._shutting_down:
            self._say(None, f"{unit.name} ended, stopping everything (--abort-on-exit)", "warn")
            self.request_shutdown()
        self._publish_states()

    def _restart_dependents(self, unit: _Unit) -> None:
        """`restart_dependents: true`: once it is ready again, so are they, afresh."""
        if not unit.service.restart_dependents or self._shutting_down:
            return
        dependents = [
            other.name
            for other in self.units.values()
            if unit.name in other.service.dependency_names and other.record.alive
        ]
        if dependents:
            self._track(self.restart(dependents, f"{unit.name} restarted"))

    def _rule(self, unit: _Unit) -> RestartRule:
        rule = RestartRule.of(unit.service)
        if self._shutting_down or self.abort_on_exit:
            # Nothing restarts while the stack goes down.
            return dataclasses.replace(rule, mode="no", watch=False)
        return rule

    def _act(self, unit: _Unit, action: policy.Action) -> None:
        if isinstance(action, policy.Say):
            self._say(unit.name, action.message, action.level)
        elif isinstance(action, policy.Spawn):
            unit.pending = not self._shutting_down
        elif isinstance(action, policy.StartProbe):
            pass  # the probe was armed before the spawn; `_spawn` awaits it
        elif isinstance(action, policy.StopProcess):
            self._stop_process(unit)
        elif isinstance(action, policy.ScheduleRestart):
            unit.restart_timer = asyncio.get_running_loop().call_later(
                action.delay, self._backoff_elapsed, unit
            )
        elif isinstance(action, policy.CancelRestart) and unit.restart_timer:
            unit.restart_timer.cancel()
            unit.restart_timer = None

    def _backoff_elapsed(self, unit: _Unit) -> None:
        unit.restart_timer = None
        if unit.record.state is State.BACKING_OFF:
            last = unit.record.last_exit
            how = policy.describe_exit(last) if last is not None else "ended"
            unit.restart_reason = f"{how} (restart: {unit.service.restart})"
            self._handle(unit, policy.BackoffElapsed())
            self._settle()

    def _settle(self) -> None:
        """After any change: start what may start now, wake waiters, notice the end."""
        self._start_pending()
        for predicate, future in list(self._waiters):
            if future.done() or predicate():
                self._waiters.remove((predicate, future))
                if not future.done():
                    future.set_result(None)
        if not self.first_spawns_done.is_set() and not any(
            unit.spawning for unit in self.units.values()
        ):
            self.first_spawns_done.set()
        self._publish_states()
        if (
            not self._shutting_down
            and self.units
            and all(
                unit.record.state in policy.ENDED_FOR_GOOD and not unit.held
                for unit in self.units.values()
            )
        ):
            self._finished.set()

    # -- starting ----------------------------------------------------------------------

    def _start_pending(self) -> None:
        # A dependency failing can make its dependents fail in turn: repeat until stable.
        changed = True
        while changed and not self._shutting_down:
            changed = False
            if not any(unit.pending and not unit.spawning for unit in self.units.values()):
                return  # the usual case after a change: no need to work out the order
            for name in self._order(self.units):
                unit = self.units[name]
                if unit.pending and not unit.spawning:
                    changed |= self._try_start(unit)

    def _try_start(self, unit: _Unit) -> bool:
        """Spawn `unit` if its dependencies allow; True if its state changed."""
        unmet, failed = self._unmet_dependencies(unit.service)
        if failed:
            unit.pending = False
            self._handle(unit, policy.DependencyFailed(failed))
            return True
        if unmet:
            waiting = f"waiting for {unmet}"
            if waiting != unit.detail:
                unit.detail = waiting
                self._say(unit.name, waiting)
            return False
        unit.pending, unit.spawning, unit.detail = False, True, ""
        self._track(self._spawn(unit))
        return False

    def _unmet_dependencies(self, service: Service) -> tuple[str, str]:
        """("db (ready), jobs (started)", "") or ("", "db exited 1")."""
        unmet = []
        for dependency in service.depends_on:
            other = self.units.get(dependency.name)
            if other is None:
                continue  # not part of this run (--no-deps): nothing to wait for
            if policy.condition_failed(other.record):
                last = other.record.last_exit
                how = policy.describe_exit(last) if last is not None else other.record.state
                # The real cause, not "crashed", for a service that never ran (issue 11 §5).
                return "", f"{dependency.name} {other.spawn_error or how}"
            if not policy.condition_met(other.record, dependency.condition):
                unmet.append(f"{dependency.name} ({dependency.condition})")
        return ", ".join(unmet), ""

    async def _spawn(self, unit: _Unit) -> None:
        service = unit.service
        try:
            env = spawn_env(unit.env, run_id=self.run_id, name=service.name, colour=self.colour)
            for port in service_ports(service.port, service.cmd):  # issue 12 item 6
                if holder := await _port_holder(port):
                    self._say(service.name, f"port {port} is in use by {holder}", "error")
                    unit.spawn_error = f"could not start: port {port} is in use by {holder}"
                    self._spawn_failed(unit)
                    return
            probe = None
            try:
                if service.ready is not None:
                    from devstack.runtime import probes  # only a service with `ready:` needs it

                    probe = probes.arm(
                        service.ready,
                        service=service.name,
                        cwd=service.cwd,
                        env=env,
                        lines=self.output,
                    )
                process = await self._spawner()(
                    name=service.name,
                    argv=service.argv,
                    cwd=service.cwd,
                    env=env,
                    tty=service.tty,
                    output=self.output,
                )
            except (OSError, ValueError) as error:
                # Issue 11 §3: a NUL byte in a value, a lone surrogate, a bad probe URL
                # fail this service alone, never the whole stack.
                if probe:
                    probe.close()
                from devstack.runtime.process import describe_spawn_error

                why = describe_spawn_error(error, service.cwd)
                self._say(service.name, f"could not start {service.argv[0]}: {why}", "error")
                unit.spawn_error = f"could not start: {why}"
                self._spawn_failed(unit)
                return
        finally:
            unit.spawning = False
        self._spawned(unit, process, probe)

    def _spawner(self) -> SpawnFunction:
        if self._spawn_process is None:
            from devstack.runtime.process import ServiceProcess

            self._spawn_process = ServiceProcess.spawn
        return self._spawn_process

    def _spawn_failed(self, unit: _Unit) -> None:
        # Before settling: waiters for "not spawning" (stop, the first spawns) see it now.
        unit.spawning = False
        unit.detail = unit.spawn_error  # `ps` and `restart` say why
        if unit.record.state is State.STARTING and not unit.record.alive:
            self._handle(unit, policy.SpawnFailed())
        self._settle()

    def _spawned(self, unit: _Unit, process: ServiceProcess, probe: probes.Probe | None) -> None:
        if unit.record.state is not State.STARTING or unit.record.alive:
            # Stopped (or shut down) while it was being spawned: it must not survive.
            if probe:
                probe.close()
            self._track(self._discard(unit, process))
            self._settle()
            return
        unit.process = process
        unit.spawn_error = ""
        unit.stop_task = None
        unit.started_at = self._wall_clock()
        self._handle(unit, policy.Spawned())
        if probe is not None:
            unit.detail = "waiting for its ready probe"
            unit.probe_task = self._track(self._await_probe(unit, process, probe))
        self._track(self._await_exit(unit, process))
        self._settle()

    async def _discard(self, unit: _Unit, process: ServiceProcess) -> int:
        """Stop a process that is no longer the unit's (it ended, or came too late)."""
        self._exiting.add(process)
        try:
            if self._kill_wanted.is_set():
                process.kill()
            service = unit.service
            return await process.stop(service.stop_signal, service.stop_timeout, self._sayer(unit))
        finally:
            self._exiting.discard(process)

    async def _await_probe(self, unit: _Unit, process: ServiceProcess, probe: probes.Probe) -> None:
        outcome = await probe.wait()
        if unit.process is not process or unit.record.state is not State.STARTING:
            return
        unit.detail = ""
        if outcome.ready:
            self._say(unit.name, "ready")
            self._handle(unit, policy.ProbePassed())
        else:
            spec = unit.service.ready
            assert spec is not None
            unit.detail = f"not ready: {outcome.describe(spec)}"
            self._say(unit.name, f"not ready after {spec.timeout:g}s: {outcome.describe(spec)}")
            self._handle(unit, policy.ProbeGaveUp())
            self._tell_dependents_still_waiting(unit)
        self._settle()

    def _tell_dependents_still_waiting(self, unit: _Unit) -> None:
        for other in self.units.values():
            if other.pending and unit.name in other.service.dependency_names:
                self._say(other.name, f"still waiting for {unit.name} to be ready", "warn")

    async def _await_exit(self, unit: _Unit, process: ServiceProcess) -> None:
        code = await process.wait()
        if unit.probe_task is not None:
            unit.probe_task.cancel()
            unit.probe_task = None
        stopping, unit.stop_task = unit.stop_task, None
        unit.process = None  # from here on a stop request has no process to stop
        if stopping is not None:
            # Only once the whole group is gone may a new instance take its port.
            await stopping
        else:
            # It ended on its own: whatever it left running in its group goes with it.
            await self._discard(unit, process)
        unit.detail = ""
        self._handle(unit, policy.Exited(code))
        self._settle()

    # -- stopping ----------------------------------------------------------------------

    def _stop_process(self, unit: _Unit) -> None:
        process = unit.process
        if process is None or unit.stop_task is not None:
            return
        service = unit.service
        unit.stop_task = self._track(
            process.stop(service.stop_signal, service.stop_timeout, self._sayer(unit))
        )

    async def _shutdown_when_asked(self) -> None:
        await self._shutdown_wanted.wait()
        signum = self._shutdown_signal
        self._shutting_down = True
        if signum is not None:
            word = SIGNAL_WORDS.get(signal.Signals(signum), signal.Signals(signum).name)
            again = " (Ctrl+C again to kill them now)" if signum == signal.SIGINT else ""
            self._say(None, f"{word}: stopping all services{again}", "warn")
        await self._stop_in_reverse_order(list(self.units.values()))
        self._finished.set()

    async def _stop_in_reverse_order(self, units: Sequence[_Unit]) -> None:
        """Stop each service once everything depending on it is down, in parallel."""
        for unit in units:
            unit.pending = False
            if not unit.record.alive and unit.record.state in policy.ALLOWED[policy.Stop]:
                self._handle(unit, policy.Stop())
        down = {unit.name: asyncio.Event() for unit in units}

        async def stop_one(unit: _Unit) -> None:
            dependents = [u for u in units if unit.name in u.service.dependency_names]
            for dependent in dependents:
                await down[dependent.name].wait()
            await self._stop_unit(unit)
            down[unit.name].set()

        await asyncio.gather(*(stop_one(unit) for unit in units))

    async def _stop_unit(self, unit: _Unit) -> None:
        if unit.record.state in policy.ALLOWED[policy.Stop]:
            self._handle(unit, policy.Stop())
        await self._until(lambda: not unit.record.alive and not unit.spawning)

    async def _kill_when_asked(self) -> None:
        await self._kill_wanted.wait()
        self._say(None, "killing all services now", "warn")
        self._kill_everything()

    def _kill_everything(self) -> None:
        for unit in self.units.values():
            if unit.process is not None:
                unit.process.kill()
        for process in self._exiting:
            process.kill()

    def _exit_status(self) -> int:
        if self.internal_errors:
            return 1
        if self._shutdown_signal is not None:
            return 128 + self._shutdown_signal
        failed = {State.CRASHED, State.WAITING_FOR_CHANGE}
        return 1 if any(unit.record.state in failed for unit in self.units.values()) else 0

    # -- what the watcher and the control socket call ---------------------------------

    async def restart(self, names: Iterable[str], reason: str) -> None:
        """Restart `names` now; a restart already under way absorbs this one.

        Services of the project that this run does not include are left alone (the
        watcher may route a change to them); `start` is the way to add them.
        """
        names = list(names)
        self._known(names, allow_unmanaged=True)  # unknown names: an error with hints
        units = [self.units[name] for name in names if name in self.units]
        if self._shutting_down:
            return
        for unit in units:
            if unit.record.state in (State.RESTARTING, State.STOPPING):
                continue  # coalesce: the coming instance starts after this request anyway
            if unit.record.state is State.STARTING and not unit.record.alive:
                continue  # not spawned yet: it will start with what is current
            unit.held = False
            unit.restart_reason = reason
            self._say(unit.name, f"restarting: {reason}")
            self._handle(unit, policy.Restart())
        self._settle()
        await self._until(lambda: all(self._settled(unit) for unit in units))

    async def start(self, names: Iterable[str]) -> None:
        """Start `names` and what they depend on, unless already running."""
        requested = list(names)
        self._known(requested, allow_unmanaged=True)
        if self._shutting_down:
            return
        edges = self._edges()
        units = [
            self._managed(name) for name in start_order(edges, with_dependencies(edges, requested))
        ]
        for unit in units:
            unit.held = False
            if unit.record.state in policy.ALLOWED[policy.Start]:
                self._handle(unit, policy.Start())
        self._settle()
        await self._until(lambda: all(self._settled(unit) for unit in units))

    async def stop(self, names: Iterable[str]) -> None:
        """Stop `names` for good (until started again); waits until they are gone."""
        units = self._known(names)
        for unit in units:
            unit.held = True
            unit.pending = False
            if unit.record.state in policy.ALLOWED[policy.Stop]:
                self._handle(unit, policy.Stop())
        self._settle()
        await self._until(lambda: all(not u.record.alive and not u.spawning for u in units))

    async def apply(self, project: Project, env: ProjectEnv) -> None:
        """Take a new config and env: start new services, stop removed ones, restart
        the ones whose command or environment changed, keep the others running."""
        old_project, self.project, self.env = self.project, project, env
        removed = [unit for name, unit in self.units.items() if name not in project.services]
        restarts: dict[str, str] = {}
        for name, unit in self.units.items():
            if name in project.services:
                reason = _change_reason(unit, project.services[name], env)
                unit.service = project.services[name]
                unit.env = dict(env.services[name].values)
                if reason:
                    restarts[name] = reason
        added = [
            name
            for name, service in project.services.items()
            if name not in old_project.services and service.autostart and self.start_new_services
        ]
        if removed:
            await self._remove(removed)
        await asyncio.gather(
            *(
                self.restart([name], reason)
                for name, reason in restarts.items()
                # A crashed service waiting for a change: a config change is one.
                if self.units[name].record.alive
                or self.units[name].record.state is State.WAITING_FOR_CHANGE
            )
        )
        if added:
            for name in added:
                self.output.add_service(name)
                self._say(name, "added to devstack.yaml, starting")
                self._add_unit(project.services[name], env)
            await self.start(added)

    def write_input(self, name: str, data: bytes) -> None:
        """Type `data` at the terminal of `name` (a `tty: true` service that runs)."""
        self._known([name], allow_unmanaged=True)  # unknown: an error with the closest names
        unit = self.units.get(name)
        if unit is None or unit.process is None:
            raise DevstackError.single(f"{name} is not running", hint=f"devstack start {name}")
        if not unit.service.tty:
            raise DevstackError.single(
                f"{name} reads no input: its stdin is /dev/null",
                hint=f"set `tty: true` on {name} in devstack.yaml to type into it",
            )
        try:
            unit.process.write_input(data)
        except OSError as error:
            raise DevstackError.single(f"cannot type into {name}: {error.strerror}") from None

    def subscribe_states(self, callback: Callable[[ServiceStatus], None]) -> Callable[[], None]:
        """Call `callback(status)` each time a service's status changes (as the
        StackAPI of issue 14 does); returns the function that ends it."""
        self._state_subscribers.append(callback)
        return lambda: self._state_subscribers.remove(callback)

    def _publish_states(self) -> None:
        if not self._state_subscribers:
            return
        for row in self.status():
            if self._published.get(row.name) != row:
                self._published[row.name] = row
                for callback in list(self._state_subscribers):
                    callback(row)

    async def settled(self) -> None:
        """Return once no service is starting, restarting or stopping (`up -d` waits so)."""
        await self._until(lambda: all(self._settled(unit) for unit in self.units.values()))

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(
                name=unit.name,
                state=unit.record.state.value,
                pid=unit.process.pid if unit.process is not None else None,
                started_at=unit.started_at if unit.record.alive else None,
                restarts=unit.record.restarts,
                last_exit=unit.record.last_exit,
                port=unit.service.port,
                detail=unit.detail,
                reason=unit.restart_reason,
            )
            for unit in self.units.values()
        ]

    # -- helpers -----------------------------------------------------------------------

    async def _remove(self, units: Sequence[_Unit]) -> None:
        for unit in units:
            self._say(unit.name, "removed from devstack.yaml, stopping")
        await self.stop([unit.name for unit in units])
        for unit in units:
            del self.units[unit.name]
            self.output.remove_service(unit.name)

    def _add_unit(self, service: Service, env: ProjectEnv) -> _Unit:
        unit = _Unit(service=service, env=dict(env.services[service.name].values))
        self.units[service.name] = unit
        return unit

    def _managed(self, name: str) -> _Unit:
        """The unit for `name`, added (stopped) if the run did not include it yet."""
        if name not in self.units:
            self.output.add_service(name)
            self._add_unit(self.project.services[name], self.env)
        return self.units[name]

    def _known(self, names: Iterable[str], allow_unmanaged: bool = False) -> list[_Unit]:
        """The units for `names`; unknown names raise one error with the closest names."""
        names = list(names)
        known = self.project.services if allow_unmanaged else self.units
        unknown = [name for name in names if name not in known]
        if unknown:
            raise DevstackError([unknown_name_error("service", name, known) for name in unknown])
        return [self.units[name] for name in names if name in self.units]

    def _settled(self, unit: _Unit) -> bool:
        """Done with a start or stop: up (ready, if it has a probe), or ended."""
        return unit.record.state not in UNSETTLED

    def _edges(self) -> dict[str, tuple[str, ...]]:
        return {name: s.dependency_names for name, s in self.project.services.items()}

    def _order(self, names: Iterable[str]) -> list[str]:
        return start_order(self._edges(), names)

    def _until(self, predicate: Callable[[], bool]) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if predicate():
            future.set_result(None)
        else:
            self._waiters.append((predicate, future))
        return future

    def _track(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        # A bug must not leave the stack running unsupervised: report it and go down.
        error = task.exception()
        assert error is not None
        text = "".join(traceback.format_exception(error))
        print(f"devstack: internal error, stopping everything:\n{text}", file=sys.stderr)
        self.internal_errors += 1  # `up` then exits non-zero (issue 11 §4)
        self.request_shutdown()

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _say(self, name: str | None, message: str, level: str = "info") -> None:
        self.output.system(name, message, level)  # type: ignore[arg-type]

    def _sayer(self, unit: _Unit) -> Callable[[str], None]:
        return lambda message: self._say(unit.name, message, "warn")


def spawn_env(values: Mapping[str, str], *, run_id: str, name: str, colour: bool) -> dict[str, str]:
    """The environment a service's process gets: its resolved env plus devstack's own."""
    env = dict(values)
    env.setdefault("PYTHONUNBUFFERED", "1")  # else Python services are silent through a pipe
    if colour:
        env.setdefault("FORCE_COLOR", "1")
    # The markers by which every process of this run is found again; never overridden.
    env["DEVSTACK_RUN_ID"] = run_id
    env["DEVSTACK_SERVICE"] = name
    return env


async def _port_holder(port: int) -> str | None:
    """Who holds `port`, or None when it is free; the slow lookup off the event loop."""
    from devstack import ports

    if ports.is_free(port):
        return None
    return await asyncio.to_thread(ports.taken_by, port)


def _change_reason(unit: _Unit, new: Service, env: ProjectEnv) -> str:
    """Why `unit` needs a new process under the new config, or "" if it does not."""
    new_values = dict(env.services[new.name].values)
    changed_vars = sorted(
        key
        for key in unit.env.keys() | new_values.keys()
        if unit.env.get(key) != new_values.get(key)
    )
    changed_fields = [
        name
        for name in PROCESS_FIELDS
        if _without_locations(getattr(unit.service, name)) != _without_locations(getattr(new, name))
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
