"""What a running stack is, as data: the `Stack`, the events the loop feeds `step`, and
the actions `step` gives back for the loop to perform (core/stackpolicy.py decides).

Events come from the loop: what happened to a process (spawned, could not be, its
probe finished, it exited), a timer, or a request (a command from a client of the
running stack, a shutdown). A request that is already met is a legal no-op, never a
check the caller makes first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from devstack.core.graph import start_order
from devstack.core.model import Service
from devstack.core.policy import Level, Record
from devstack.core.records import Records


@dataclass(frozen=True)
class Stack:
    """Everything the supervisor knows about a run, but its processes and timers."""

    services: Mapping[str, Service]  # the current project's, in file order
    configs: Mapping[str, Service]  # the services of this run: the config each runs with
    records: Records  # where each service of this run is in its life, in run order
    abort_on_exit: bool = False
    shutdown_requests: int = 0
    shutdown_signal: int | None = None
    internal_errors: int = 0
    first_spawns_done: bool = False
    finished: bool = False
    # Derived from `services` and `configs`, kept so that a step need not work it out.
    wiring: Wiring | None = field(default=None, compare=False, repr=False)

    @classmethod
    def of(
        cls, services: Mapping[str, Service], names: Iterable[str], abort_on_exit: bool = False
    ) -> Stack:
        names = list(names)
        configs = {name: services[name] for name in names}
        return cls(
            services=services,
            configs=configs,
            records=Records((name, Record()) for name in names),
            abort_on_exit=abort_on_exit,
            wiring=Wiring.of(services, configs),
        )

    @property
    def shutting_down(self) -> bool:
        """Stopping for good (Ctrl+C, a signal, `down`, --abort-on-exit)."""
        return self.shutdown_requests > 0


@dataclass(frozen=True)
class Wiring:
    """Who depends on whom in a run, and its start order: what `step` would otherwise
    work out from every service on each event. Built from `services` and `configs`,
    which it keeps to be recognised: a stack whose mappings are others has it rebuilt."""

    services: Mapping[str, Service]
    configs: Mapping[str, Service]
    edges: Mapping[str, tuple[str, ...]]  # name -> its dependencies, every service, file order
    dependents: Mapping[str, tuple[str, ...]]  # name -> the run's services depending on it
    order: tuple[str, ...]  # the run's services in start order (not a removed one)
    rank: Mapping[str, int]  # name -> its place in `order`

    @classmethod
    def of(cls, services: Mapping[str, Service], configs: Mapping[str, Service]) -> Wiring:
        edges = {name: service.dependency_names for name, service in services.items()}
        dependents: dict[str, list[str]] = {}
        for name, config in configs.items():
            for dependency in dict.fromkeys(config.dependency_names):
                dependents.setdefault(dependency, []).append(name)
        order = tuple(start_order(edges, configs))
        return cls(
            services,
            configs,
            edges,
            {name: tuple(names) for name, names in dependents.items()},
            order,
            {name: place for place, name in enumerate(order)},
        )

    def fits(self, stack: Stack) -> bool:
        return self.services is stack.services and self.configs is stack.configs


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
