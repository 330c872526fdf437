"""The one loop that runs a stack: it feeds events to the policy and performs its actions.

Every decision is `stackpolicy.step`'s: the supervisor keeps the processes, tasks and
timers (never a service's state) and turns what happens to them (a process spawned
or exited, a probe finished, a timer fired, a command or a shutdown request) into
events on one queue. Each event is handled to completion, in order: `step` gives
the next `Stack` and the actions, which the supervisor performs (spawn, stop with
escalation, set a timer, say something). It awaits events and never polls.

Clients use it through `StackAPI` (runtime/stackapi.py): the file watcher, the
control socket, the key reader. Signal handlers only call `request_shutdown`, which
queues the request for the loop.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import traceback
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from devstack.core import stackmodel, stackpolicy
from devstack.core.errors import DevstackError, unknown_name_error
from devstack.core.graph import ReloadSelection
from devstack.core.model import Project, ReadyProbe, Service
from devstack.core.scripts import service_ports
from devstack.core.secrets import KnownSecrets
from devstack.core.stackmodel import Stack
from devstack.runtime.firstwave import spawn_env
from devstack.runtime.stackapi import Level, OutputCallback, ServiceStatus, StateCallback

if TYPE_CHECKING:
    from devstack.core.envmodel import ProjectEnv
    from devstack.runtime import probes
    from devstack.runtime.output import Output

__all__ = ["ServiceStatus", "Supervisor", "spawn_env"]


class ProcessHandle(Protocol):
    """What the supervisor needs of a spawned process (runtime/process.ServiceProcess)."""

    pid: int

    async def wait(self) -> int: ...

    async def stop(self, sig: int, timeout: float, say: Callable[[str], None]) -> int: ...

    def kill(self) -> None: ...

    def write_input(self, data: bytes) -> None: ...


# spawn(name=, argv=, cwd=, env=, tty=, output=) -> a running process: ServiceProcess.spawn
SpawnFunction = Callable[..., Awaitable[ProcessHandle]]


class Cancellable(Protocol):
    def cancel(self) -> None: ...


# (delay in seconds, callback) -> a handle: the event loop's `call_later` by default.
TimerFunction = Callable[[float, Callable[[], None]], Cancellable]
SHUTDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(eq=False)
class _Handles:
    """What the loop holds for one service: its process and the tasks about it."""

    env: dict[str, str]  # the resolved env its process gets (devstack's own added)
    process: ProcessHandle | None = None
    probe: probes.Probe | None = None
    incoming: tuple[ProcessHandle, probes.Probe | None] | None = None  # spawned, not adopted
    restart_timer: Cancellable | None = None
    probe_task: asyncio.Task[None] | None = None
    stop_task: asyncio.Task[int] | None = None


class Supervisor:
    """Runs a stack; implements `StackAPI` for its clients."""

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
        timer: TimerFunction | None = None,
    ) -> None:
        self._project = project
        self._env = env
        self._secrets = env.secret_texts(project.vars)
        self._known_secrets = KnownSecrets(self._secrets)
        self.output = output
        self.run_id = run_id
        self.colour = colour
        self.start_new_services = start_new_services
        self._spawn_process = spawn
        self._clock = clock
        self._wall_clock = wall_clock
        self._timer = timer
        self.stack = Stack.of(project.services, names, abort_on_exit)
        self._handles = {name: _Handles(env=dict(env.services[name].values)) for name in names}
        self._queue: deque[stackmodel.StackEvent] = deque()
        self._draining = False
        self._waits: list[asyncio.Future[None]] = []  # of the command being fed
        self._tasks: set[asyncio.Task[Any]] = set()
        self._waiters: list[tuple[stackmodel.WaitFor, asyncio.Future[None]]] = []
        self._state_subscribers: list[StateCallback] = []
        self._published: dict[str, ServiceStatus] = {}  # what subscribers last heard
        self._finished = asyncio.Event()
        self._killing = False
        self._exiting: set[ProcessHandle] = set()  # ended; leftovers of its group going
        # Set once the services that could start at once have been spawned (or failed
        # to): what runs beside the supervisor and is not needed before (the watcher)
        # waits for it, so that its start does not hold up the services' first lines.
        self.first_spawns_done = asyncio.Event()

    # -- the loop ----------------------------------------------------------------------

    async def run(self) -> int:
        """Run until every service ended for good, or a shutdown finished; the exit status."""
        loop = asyncio.get_running_loop()
        for signum in SHUTDOWN_SIGNALS:
            loop.add_signal_handler(signum, self.request_shutdown, signum)
        try:
            self._feed(stackmodel.Boot())
            await self._finished.wait()
        except BaseException:
            self._kill_everything()  # a bug or a cancellation must not leave services behind
            raise
        finally:
            for signum in SHUTDOWN_SIGNALS:
                loop.remove_signal_handler(signum)
            await self._drain()
        return stackpolicy.exit_status(self.stack)

    @property
    def shutting_down(self) -> bool:
        """Stopping for good (Ctrl+C, a signal, `down`, --abort-on-exit)."""
        return self.stack.shutting_down

    def request_shutdown(self, signum: int | None = None) -> None:
        """Queue a shutdown request (a signal handler, `devstack down`); the loop acts.

        A second request kills everything at once.
        """
        self._feed(stackmodel.ShutdownRequested(signum))

    def _feed(self, event: stackmodel.StackEvent) -> None:
        """Queue `event`; unless an event is being handled already, handle the queue.

        Each event runs to completion (step, then its actions) before the next: an
        action that causes an event (a restart of the dependents) queues it.
        """
        self._queue.append(event)
        if self._draining:
            return
        self._draining = True
        try:
            while self._queue:
                event = self._queue.popleft()
                self.stack, actions = stackpolicy.step(self.stack, event, self._clock())
                for action in actions:
                    self._perform(action)
                self._publish_changes()
        finally:
            self._draining = False
        self._wake_waiters()

    def _perform(self, action: stackmodel.Action) -> None:
        s = stackmodel
        if isinstance(action, s.Announce):
            self._say(action.name, action.message, action.level)
        elif isinstance(action, s.Launch):
            self._track(self._spawn(action.name))
        elif isinstance(action, s.Adopt):
            self._adopt(action.name)
        elif isinstance(action, s.Discard):
            self._discard_incoming(action.name)
        elif isinstance(action, s.WatchProbe):
            self._watch_probe(action.name, action.instance)
        elif isinstance(action, s.Halt):
            self._stop_process(action.name)
        elif isinstance(action, s.SetTimer):
            self._set_timer(action.name, action.delay)
        elif isinstance(action, s.CancelTimer):
            self._cancel_timer(action.name)
        elif isinstance(action, s.AddOutput):
            self.output.add_service(action.name)
            self._handles[action.name] = _Handles(env=dict(self._env.services[action.name].values))
        elif isinstance(action, s.RemoveOutput):
            del self._handles[action.name]
            self.output.remove_service(action.name)
        elif isinstance(action, s.WaitFor):
            self._waits.append(self._until(action))
        elif isinstance(action, s.FirstSpawnsDone):
            self.first_spawns_done.set()
        elif isinstance(action, s.Finish):
            self._finished.set()
        elif isinstance(action, s.KillAll):
            self._killing = True
            self._kill_everything()

    def _set_timer(self, name: str, delay: float) -> None:
        elapsed = stackmodel.BackoffDone(name)
        if self._timer is not None:
            handle = self._timer(delay, lambda: self._feed(elapsed))
        else:
            handle = asyncio.get_running_loop().call_later(delay, self._feed, elapsed)
        self._handles[name].restart_timer = handle

    def _cancel_timer(self, name: str) -> None:
        handles = self._handles[name]
        if handles.restart_timer is not None:
            handles.restart_timer.cancel()
            handles.restart_timer = None

    # -- starting ----------------------------------------------------------------------

    async def _spawn(self, name: str) -> None:
        service = self.stack.configs[name]
        handles = self._handles[name]
        probe = None
        try:
            env = self.service_env(name, handles.env)
            for port in service_ports(service.port, service.cmd):  # issue 12 item 6
                if holder := await _port_holder(port):
                    taken = f"port {port} is in use by {holder}"
                    self._feed(stackmodel.SpawnError(name, taken, f"could not start: {taken}"))
                    return
            if service.ready is not None:
                from devstack.runtime import probes  # only a service with `ready:` needs it

                probe = probes.arm(
                    service.ready, service=name, cwd=service.cwd, env=env, lines=self.output
                )
            process = await self._spawner()(
                name=name,
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
            self._feed(
                stackmodel.SpawnError(
                    name, f"could not start {service.argv[0]}: {why}", f"could not start: {why}"
                )
            )
            return
        except BaseException:
            # A bug (`_task_done` reports it) or a cancellation: not spawning any more.
            self._feed(stackmodel.SpawnAbandoned(name))
            raise
        handles.incoming = (process, probe)
        self._feed(stackmodel.SpawnDone(name, self._wall_clock()))

    def _spawner(self) -> SpawnFunction:
        if self._spawn_process is None:
            from devstack.runtime.process import ServiceProcess  # not needed by a fake

            self._spawn_process = ServiceProcess.spawn
        return self._spawn_process

    def _adopt(self, name: str) -> None:
        handles = self._handles[name]
        assert handles.incoming is not None
        (process, handles.probe), handles.incoming = handles.incoming, None
        handles.process = process
        handles.stop_task = None
        self._track(self._await_exit(name, process))

    def _discard_incoming(self, name: str) -> None:
        handles = self._handles[name]
        assert handles.incoming is not None
        (process, probe), handles.incoming = handles.incoming, None
        if probe:
            probe.close()
        self._track(self._discard(name, process, self.stack.configs[name]))

    async def _discard(self, name: str, process: ProcessHandle, service: Service) -> int:
        """Stop a process that is no longer the service's (it ended, or came too late)."""
        self._exiting.add(process)
        try:
            if self._killing:
                process.kill()
            return await process.stop(service.stop_signal, service.stop_timeout, self._sayer(name))
        finally:
            self._exiting.discard(process)

    def _watch_probe(self, name: str, instance: int) -> None:
        handles = self._handles[name]
        probe = handles.probe
        assert probe is not None
        spec = self.stack.configs[name].ready
        assert spec is not None
        handles.probe_task = self._track(self._await_probe(name, probe, spec, instance))

    async def _await_probe(
        self, name: str, probe: probes.Probe, spec: ReadyProbe, instance: int
    ) -> None:
        outcome = await probe.wait()
        why = "" if outcome.ready else outcome.describe(spec)
        self._feed(stackmodel.ProbeDone(name, instance, outcome.ready, why, spec.timeout))

    async def _await_exit(self, name: str, process: ProcessHandle) -> None:
        code = await process.wait()
        handles = self._handles[name]
        if handles.probe_task is not None:
            handles.probe_task.cancel()
            handles.probe_task = None
        stopping, handles.stop_task = handles.stop_task, None
        handles.process = handles.probe = None  # from here on a stop has no process to stop
        if stopping is not None:
            # Only once the whole group is gone may a new instance take its port.
            await stopping
        else:
            # It ended on its own: whatever it left running in its group goes with it.
            await self._discard(name, process, self.stack.configs[name])
        self._feed(stackmodel.ProcessExited(name, code))

    # -- stopping ----------------------------------------------------------------------

    def _stop_process(self, name: str) -> None:
        handles = self._handles[name]
        process = handles.process
        if process is None or handles.stop_task is not None:
            return  # it exited already (its exit is on its way), or a stop is under way
        service = self.stack.configs[name]
        handles.stop_task = self._track(
            process.stop(service.stop_signal, service.stop_timeout, self._sayer(name))
        )

    def _kill_everything(self) -> None:
        for handles in self._handles.values():
            if handles.process is not None:
                handles.process.kill()
        for process in self._exiting:
            process.kill()

    # -- StackAPI: what the watcher, the control socket and the key reader use -------

    @property
    def project(self) -> Project:
        return self._project

    @property
    def env(self) -> ProjectEnv:
        return self._env

    async def restart(
        self, names: Iterable[str], reason: str, *, skip_stopped: bool = False
    ) -> None:
        """Restart `names` now; a restart already under way absorbs this one.

        Services of the project that this run does not include are left alone (the
        watcher may route a change to them); `start` is the way to add them.
        """
        names = tuple(names)
        self._known(names, allow_unmanaged=True)  # unknown names: an error with hints
        await self._command(stackmodel.RestartCommand(names, reason, skip_stopped))

    async def start(self, names: Iterable[str]) -> None:
        """Start `names` and what they depend on, unless already running."""
        names = tuple(names)
        self._known(names, allow_unmanaged=True)
        await self._command(stackmodel.StartCommand(names))

    async def stop(self, names: Iterable[str]) -> None:
        """Stop `names` for good (until started again); waits until they are gone."""
        names = tuple(names)
        self._known(names)
        await self._command(stackmodel.StopCommand(names))

    async def apply(self, project: Project, env: ProjectEnv) -> None:
        """Take a new config and env: start new services, stop removed ones, restart
        the ones whose command or environment changed, keep the others running."""
        plan = stackpolicy.plan_reload(
            self.stack,
            {name: handles.env for name, handles in self._handles.items()},
            project.services,
            {name: values.values for name, values in env.services.items()},
            self.start_new_services,
        )
        self._project, self._env = project, env
        # The old values too: an instance spawned with them may still be named in a message.
        old, self._secrets = self._secrets, env.secret_texts(project.vars)
        self._known_secrets = KnownSecrets(old | self._secrets)
        for name, handles in self._handles.items():
            if name in project.services:
                handles.env = dict(env.services[name].values)
        self._feed(stackmodel.Reconfigure(project.services))
        if plan.removed:
            for name in plan.removed:
                self._say(name, "removed from devstack.yaml, stopping")
            await self.stop(plan.removed)
            self._feed(stackmodel.ForgetServices(plan.removed))
        await self._command(stackmodel.ConfigChanged(plan.restarts))
        if plan.added:
            self._feed(stackmodel.AddServices(plan.added, "added to devstack.yaml, starting"))
            await self.start(plan.added)

    async def settled(self) -> None:
        """Return once no service is starting, restarting or stopping (`up -d` waits so)."""
        await self._until(stackmodel.WaitFor(tuple(self.stack.records), "settled"))

    def status(self) -> list[ServiceStatus]:
        return [self._snapshot(name) for name in self.stack.records]

    def selection(self) -> ReloadSelection:
        return ReloadSelection(
            in_run=frozenset(self.stack.records),
            known=frozenset(self.project.services),
            start_new=self.start_new_services,
        )

    def service_env(self, name: str, values: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment `name`'s process gets from `values` (default: its current env)."""
        if values is None:
            values = self._env.services[name].values
        repo, cwd = str(self._project.root), str(self._project.services[name].cwd)
        return spawn_env(
            values, run_id=self.run_id, name=name, colour=self.colour, repo=repo, cwd=cwd
        )

    def say(self, message: str, level: Level = "info") -> None:
        self._say(None, message, level)

    def subscribe_output(self, callback: OutputCallback) -> Callable[[], None]:
        return self.output.subscribe(callback)

    def subscribe_states(self, callback: StateCallback) -> Callable[[], None]:
        self._state_subscribers.append(callback)
        return lambda: self._state_subscribers.remove(callback)

    def write_input(self, name: str, data: bytes) -> None:
        """Type `data` at the terminal of `name` (a `tty: true` service that runs)."""
        self._known([name], allow_unmanaged=True)  # unknown: an error with the closest names
        handles = self._handles.get(name)
        process = handles.process if handles is not None else None
        if process is None:
            raise DevstackError.single(f"{name} is not running", hint=f"devstack start {name}")
        if not self.stack.configs[name].tty:
            raise DevstackError.single(
                f"{name} reads no input: its stdin is /dev/null",
                hint=f"set `tty: true` on {name} in devstack.yaml to type into it",
            )
        try:
            process.write_input(data)
        except OSError as error:
            raise DevstackError.single(f"cannot type into {name}: {error.strerror}") from None

    # -- helpers -----------------------------------------------------------------------

    def _snapshot(self, name: str) -> ServiceStatus:
        record, handles = self.stack.records[name], self._handles[name]
        return ServiceStatus(
            name=name,
            state=record.state.value,
            pid=handles.process.pid if handles.process is not None else None,
            started_at=record.started_at,
            restarts=record.restarts,
            last_exit=record.last_exit,
            port=self.stack.configs[name].port,
            detail=record.detail,
            reason=record.reason,
        )

    def _publish_changes(self) -> None:
        """Tell the state subscribers each snapshot that changed since they last heard."""
        if not self._state_subscribers:
            return
        for name in self.stack.records:
            snapshot = self._snapshot(name)
            if self._published.get(name) != snapshot:
                self._published[name] = snapshot
                for callback in list(self._state_subscribers):
                    callback(snapshot)

    async def _command(self, event: stackmodel.StackEvent) -> None:
        """Feed a command; return once what the policy says it waits for came about."""
        self._feed(event)
        waits, self._waits = self._waits, []
        await asyncio.gather(*waits)

    def _known(self, names: Iterable[str], allow_unmanaged: bool = False) -> None:
        """Unknown names raise one error with the closest names."""
        known = self.project.services if allow_unmanaged else self.stack.records
        unknown = [name for name in names if name not in known]
        if unknown:
            raise DevstackError([unknown_name_error("service", name, known) for name in unknown])

    def _until(self, wait: stackmodel.WaitFor) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if stackpolicy.waited(self.stack, wait):
            future.set_result(None)
        else:
            self._waiters.append((wait, future))
        return future

    def _wake_waiters(self) -> None:
        for wait, future in list(self._waiters):
            if future.done() or stackpolicy.waited(self.stack, wait):
                self._waiters.remove((wait, future))
                if not future.done():
                    future.set_result(None)

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
        self._feed(stackmodel.InternalError())  # `up` then exits 1 (issue 11 §4)

    async def _drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _say(self, name: str | None, message: str, level: Level = "info") -> None:
        # A command line a shell expanded may hold a secret no flag name gives away.
        self.output.system(name, self._known_secrets.text(message), level)

    def _sayer(self, name: str) -> Callable[[str], None]:
        return lambda message: self._say(name, message, "warn")


async def _port_holder(port: int) -> str | None:
    """Who holds `port`, or None when it is free; the slow lookup off the event loop."""
    from devstack.runtime import ports

    if ports.is_free(port):
        return None
    return await asyncio.to_thread(ports.taken_by, port)
