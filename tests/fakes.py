"""One stand-in for a running stack, implementing `StackAPI`, for the tests of its
clients (the control socket, the file watcher, the key reader).

It records what it is asked (`calls`, awaitably `restarts`) and what it is told to
say (`messages`, awaitably `said`), and changes its services' states as a real one
would once the processes did.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devstack.core.errors import DevstackError, unknown_name_error
from devstack.core.graph import ReloadSelection
from devstack.runtime.stackapi import (
    Level,
    OutputCallback,
    ServiceStatus,
    StackAPI,
    StateCallback,
    Unsubscribe,
)
from devstack.runtime.supervisor import spawn_env


class FakeStack:
    def __init__(self, project: Any, env: Any, *, run_id: str = "run-1") -> None:
        self._project = project
        self._env = env
        self.run_id = run_id
        self.states: dict[str, str] = dict.fromkeys(project.services, "running")
        self.calls: list[tuple[str, tuple[str, ...]]] = []
        self.restarts: asyncio.Queue[tuple[list[str], str]] = asyncio.Queue()
        self.messages: list[str] = []
        self.said: asyncio.Queue[str] = asyncio.Queue()
        self.shutdowns = 0
        self.applied: list[tuple[Any, Any]] = []
        self.typed: list[tuple[str, bytes]] = []
        self.output_subscribers: list[OutputCallback] = []
        self.state_subscribers: list[StateCallback] = []

    @classmethod
    def of_repo(cls, root: Path) -> FakeStack:
        """A stack running every service of the repo at `root`, as configured there."""
        from devstack.core.config import load_project
        from devstack.core.envresolve import resolve_project

        project = load_project(root / "devstack.yaml")
        return cls(project, resolve_project(project, {}, {}))

    # -- what the tests drive ----------------------------------------------------------

    def emit(self, name: str, *lines: str) -> None:
        """`name` wrote `lines`."""
        for callback in list(self.output_subscribers):
            callback(name, list(lines))

    def change(self, name: str, state: str) -> None:
        """`name` is in `state` now: the state subscribers hear every service's status."""
        self.states[name] = state
        for status in self.status():
            for callback in list(self.state_subscribers):
                callback(status)

    # -- StackAPI ------------------------------------------------------------------------

    @property
    def project(self) -> Any:
        return self._project

    @property
    def env(self) -> Any:
        return self._env

    def status(self) -> list[ServiceStatus]:
        return [
            ServiceStatus(name, state, 100 + i if state == "running" else None, 1.0, 0, None, None)
            for i, (name, state) in enumerate(self.states.items())
        ]

    def selection(self) -> ReloadSelection:
        return ReloadSelection(frozenset(self.states), frozenset(self._project.services), True)

    def service_env(self, name: str) -> dict[str, str]:
        values = self._env.services[name].values
        return spawn_env(values, run_id=self.run_id, name=name, colour=False)

    async def settled(self) -> None:
        await asyncio.sleep(0)

    async def start(self, names: Iterable[str]) -> None:
        await self._act("start", names, "running")

    async def stop(self, names: Iterable[str]) -> None:
        await self._act("stop", names, "stopped")

    async def restart(
        self, names: Iterable[str], reason: str, *, skip_stopped: bool = False
    ) -> None:
        names = [n for n in names if not (skip_stopped and self.states.get(n) == "stopped")]
        if names:
            await self._act("restart", names, "running")
            self.restarts.put_nowait((names, reason))

    async def apply(self, project: Any, env: Any) -> None:
        self.applied.append((project, env))
        self._project, self._env = project, env

    def request_shutdown(self, signum: int | None = None) -> None:
        self.shutdowns += 1

    def say(self, message: str, level: Level = "info") -> None:
        self.messages.append(message)
        self.said.put_nowait(message)

    def subscribe_output(self, callback: OutputCallback) -> Unsubscribe:
        self.output_subscribers.append(callback)
        return lambda: self.output_subscribers.remove(callback)

    def subscribe_states(self, callback: StateCallback) -> Unsubscribe:
        self.state_subscribers.append(callback)
        return lambda: self.state_subscribers.remove(callback)

    def write_input(self, name: str, data: bytes) -> None:
        self.typed.append((name, data))

    async def _act(self, op: str, names: Iterable[str], state: str) -> None:
        names = list(names)
        known = self._project.services
        unknown = [name for name in names if name not in known]
        if unknown:
            raise DevstackError([unknown_name_error("service", n, known) for n in unknown])
        self.calls.append((op, tuple(names)))
        await asyncio.sleep(0)  # a real one awaits the processes
        for name in names:
            self.states[name] = state
            status = next(s for s in self.status() if s.name == name)
            for callback in list(self.state_subscribers):
                callback(status)


def _implements_the_protocol(fake: FakeStack) -> StackAPI:
    return fake  # mypy checks that FakeStack is a StackAPI
