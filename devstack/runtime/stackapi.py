"""What a client of a running stack may use, and nothing more.

The file watcher, the control socket and the key reader drive a stack only through
`StackAPI` (the supervisor implements it; tests use `tests/fakes.py`'s `FakeStack`);
so will the terminal UI, `up -d` and the MCP server. It gives:

- snapshots: `status()`, one `ServiceStatus` per service of the run (state, pid,
  uptime, restarts, the last restart's reason, port);
- commands: `start`, `stop`, `restart` (with a reason, said and kept), `apply` (a
  reloaded config and env), `request_shutdown`; `settled` waits for the dust;
- subscriptions: `subscribe_output` (each service's lines as they are written) and
  `subscribe_states` (a snapshot each time one changes: state, pid, detail ...);
- input: `write_input` types at the terminal of a `tty: true` service;
- what it runs: `project`, `env`, `selection` (which services a reload may check),
  `service_env` (the environment a service's process gets), `say` (a line of
  devstack's own in the terminal and the log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from devstack.core.envmodel import ProjectEnv
    from devstack.core.graph import ReloadSelection
    from devstack.core.model import Project

Level = Literal["info", "warn", "error"]
OutputCallback = Callable[[str, list[str]], None]
Unsubscribe = Callable[[], None]


@dataclass(frozen=True)
class ServiceStatus:
    """One service's state, as `devstack ps` shows it."""

    name: str
    state: str
    pid: int | None
    started_at: float | None  # wall-clock time the current instance started
    restarts: int
    last_exit: int | None
    port: int | None
    detail: str = ""  # "waiting for db (ready)", why it is not ready, ...
    reason: str = ""  # why it last restarted: "app.py changed", "asked by `devstack restart`"

    def uptime(self, now: float) -> float | None:
        """Seconds the current instance has run, at wall-clock time `now`."""
        return None if self.started_at is None else max(now - self.started_at, 0.0)


StateCallback = Callable[[ServiceStatus], None]


class StackAPI(Protocol):
    """A running stack, as its clients see it."""

    @property
    def project(self) -> Project: ...

    @property
    def env(self) -> ProjectEnv: ...

    def status(self) -> list[ServiceStatus]:
        """The services of the run, in the order they were added."""
        ...

    def selection(self) -> ReloadSelection:
        """Which services of a reloaded config this run has or would start."""
        ...

    def service_env(self, name: str) -> dict[str, str]:
        """The environment `name`'s process gets (its resolved env, devstack's own)."""
        ...

    async def settled(self) -> None:
        """Return once no service is starting, restarting or stopping."""
        ...

    async def start(self, names: Iterable[str]) -> None:
        """Start `names` and what they depend on; returns once they are up or ended."""
        ...

    async def stop(self, names: Iterable[str]) -> None:
        """Stop `names` until started again; returns once they are gone."""
        ...

    async def restart(
        self, names: Iterable[str], reason: str, *, skip_stopped: bool = False
    ) -> None:
        """Restart `names`, saying `reason`; `skip_stopped` leaves what was stopped on
        request alone. Returns once they are up or ended."""
        ...

    async def apply(self, project: Project, env: ProjectEnv) -> None:
        """Run with a reloaded config and env: restart exactly what changed."""
        ...

    def request_shutdown(self, signum: int | None = None) -> None:
        """Stop everything; a second request kills everything at once."""
        ...

    def say(self, message: str, level: Level = "info") -> None: ...

    def subscribe_output(self, callback: OutputCallback) -> Unsubscribe: ...

    def subscribe_states(self, callback: StateCallback) -> Unsubscribe:
        """`callback(snapshot)` each time a service's snapshot changes."""
        ...

    def write_input(self, name: str, data: bytes) -> None:
        """Type `data` at the terminal of `name` (a `tty: true` service that runs)."""
        ...
