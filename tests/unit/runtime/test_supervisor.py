"""The supervisor through its seams (a fake spawner, clock and timer), as a table of
event histories (like honcho's test_manager HISTORIES): what the test makes happen,
and everything the supervisor does and says in answer, in order.

A history's steps: `exit NAME CODE` (its process exits), `tick SECONDS` (time passes;
due timers fire), `restart NAME... : REASON`, `change NAME : REASON` (a watched file:
a service stopped on request stays stopped), `stop NAME...`, `start NAME...`,
`print NAME TEXT` (it printed a line: a log probe may pass),
`shutdown`, `kill` (a second shutdown request). The log: `spawn NAME`, `stop NAME`
(its stop signal sent), `kill NAME`, `NAME: message` (said), `-> exit STATUS`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from devstack.core.config import load_project
from devstack.core.envresolve import resolve_project
from devstack.runtime.stackapi import ServiceStatus
from devstack.runtime.supervisor import Supervisor
from tests.support import make_repo


@dataclass
class World:
    """The fakes around a supervisor: processes, time, timers, the terminal."""

    log: list[str] = field(default_factory=list)
    now: float = 0.0
    timers: list[tuple[float, int, Callable[[], None], list[bool]]] = field(default_factory=list)
    processes: dict[str, FakeProcess] = field(default_factory=dict)
    pids: itertools.count[int] = field(default_factory=lambda: itertools.count(100))
    order: itertools.count[int] = field(default_factory=itertools.count)
    fail_spawn: set[str] = field(default_factory=set)
    bug_spawn: set[str] = field(default_factory=set)
    readers: list[Callable[[str, list[str]], None]] = field(default_factory=list)

    async def spawn(self, *, name: str, **_: Any) -> FakeProcess:
        if name in self.fail_spawn:
            raise PermissionError(13, "Permission denied")
        if name in self.bug_spawn:
            raise RuntimeError("a bug")
        self.log.append(f"spawn {name}")
        process = self.processes[name] = FakeProcess(self, name, next(self.pids))
        return process

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        cancelled = [False]
        heapq.heappush(self.timers, (self.now + delay, next(self.order), callback, cancelled))
        return _Handle(cancelled)

    def tick(self, seconds: float) -> None:
        self.now += seconds
        while self.timers and self.timers[0][0] <= self.now:
            _, _, callback, cancelled = heapq.heappop(self.timers)
            if not cancelled[0]:
                callback()

    # the parts of Output the supervisor uses
    def system(self, name: str | None, message: str, level: str = "info") -> None:
        self.log.append(f"{name or 'devstack'}: {message}")

    def add_service(self, name: str) -> None:
        pass

    def remove_service(self, name: str) -> None:
        pass

    def subscribe(self, callback: Callable[[str, list[str]], None]) -> Callable[[], None]:
        self.readers.append(callback)
        return lambda: self.readers.remove(callback)

    def print(self, name: str, line: str) -> None:
        """`name` printed `line` (what a log probe waits for)."""
        for callback in list(self.readers):
            callback(name, [line])


@dataclass
class _Handle:
    cancelled: list[bool]

    def cancel(self) -> None:
        self.cancelled[0] = True


class FakeProcess:
    def __init__(self, world: World, name: str, pid: int) -> None:
        self.world, self.name, self.pid = world, name, pid
        self._exit: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def exit(self, code: int) -> None:
        if not self._exit.done():
            self._exit.set_result(code)

    async def wait(self) -> int:
        return await asyncio.shield(self._exit)

    async def stop(self, stop_signal: int, timeout: float, say: Callable[[str], None]) -> int:
        if not self._exit.done():
            self.world.log.append(f"stop {self.name}")
            self.exit(-int(stop_signal))
        return await self.wait()

    def kill(self) -> None:
        if not self._exit.done():
            self.world.log.append(f"kill {self.name}")
            self.exit(-9)


def in_world(
    project: Any, world: World, names: list[str] | None = None, **overrides: Any
) -> Supervisor:
    """A Supervisor of `project` whose processes, timers and clock are `world`'s."""
    options: dict[str, Any] = {
        "output": world,
        "run_id": "run-1",
        "spawn": world.spawn,
        "clock": lambda: world.now,
        "timer": world.call_later,
        **overrides,
    }
    return Supervisor(
        project,
        resolve_project(project, {}, {}),
        list(project.services) if names is None else names,
        **options,
    )


async def idle() -> None:
    """Let every task the fakes woke run to its next wait (nothing here does real I/O)."""
    for _ in range(50):
        await asyncio.sleep(0)


HISTORIES: dict[str, tuple[str, list[str], list[str]]] = {
    "a crash with restart: no ends the run with status 1": (
        "api: {cmd: run}",
        ["exit api 1"],
        ["spawn api", "api: exited 1", "-> exit 1"],
    ),
    "a clean exit ends the run with status 0": (
        "api: {cmd: run}",
        ["exit api 0"],
        ["spawn api", "api: exited 0", "-> exit 0"],
    ),
    "on-failure backs off, doubling, and a stable run forgives": (
        "api: {cmd: run, restart: on-failure}",
        ["exit api 1", "tick 1", "exit api 1", "tick 2", "tick 10", "exit api 1", "shutdown"],
        [
            "spawn api",
            "api: exited 1, restarting in 1s",
            "spawn api",
            "api: exited 1, restarting in 2s",
            "spawn api",
            "api: exited 1, restarting in 1s",
            "-> exit 0",  # stopped while it waited: nothing to stop, nothing said
        ],
    ),
    "a dependent waits for its dependency to complete": (
        """
        db: {cmd: migrate}
        api: {cmd: run, depends_on: {db: {condition: completed}}}
        """,
        ["exit db 0", "shutdown"],
        [
            "api: waiting for db (completed)",
            "spawn db",
            "db: exited 0",
            "spawn api",
            "stop api",
            "api: stopped",
            "-> exit 0",
        ],
    ),
    "a failed dependency fails its dependents": (
        """
        db: {cmd: migrate}
        api: {cmd: run, depends_on: {db: {condition: completed}}}
        """,
        ["exit db 1"],
        [
            "api: waiting for db (completed)",
            "spawn db",
            "db: exited 1",
            "api: not started: db exited 1",
            "-> exit 1",
        ],
    ),
    "a restart says why, and stops before it spawns again": (
        "api: {cmd: run}",
        ["restart api : app.py changed", "shutdown"],
        [
            "spawn api",
            "api: restarting: app.py changed",
            "stop api",
            "spawn api",
            "stop api",
            "api: stopped",
            "-> exit 0",
        ],
    ),
    "a change leaves a service stopped on request alone; a start brings it back": (
        "api: {cmd: run}\njobs: {cmd: work}",
        ["stop api", "change api : app.py changed", "start api", "shutdown"],
        [
            "spawn api",
            "spawn jobs",
            "stop api",
            "api: stopped",
            "spawn api",
            "stop api",
            "stop jobs",
            "api: stopped",
            "jobs: stopped",
            "-> exit 0",
        ],
    ),
    "shutdown stops dependents first": (
        """
        db: {cmd: serve}
        api: {cmd: run, depends_on: [db]}
        """,
        ["shutdown"],
        [
            "api: waiting for db (ready)",
            "spawn db",
            "spawn api",
            "stop api",
            "api: stopped",
            "stop db",
            "db: stopped",
            "-> exit 0",
        ],
    ),
    "a second shutdown request kills at once": (
        "api: {cmd: run, stop_timeout: 30}",
        ["kill"],
        [
            "spawn api",
            "devstack: killing all services now",
            "kill api",
            "api: stopped",
            "-> exit 0",
        ],
    ),
    "restart_dependents restarts them once it is up again": (
        """
        db: {cmd: serve, restart_dependents: true}
        api: {cmd: run, depends_on: [db]}
        """,
        ["restart db : schema.sql changed", "shutdown"],
        [
            "api: waiting for db (ready)",
            "spawn db",
            "spawn api",
            "db: restarting: schema.sql changed",
            "stop db",
            "spawn db",
            "api: restarting: db restarted",
            "stop api",
            "spawn api",
            "stop api",
            "api: stopped",
            "stop db",
            "db: stopped",
            "-> exit 0",
        ],
    ),
    "--abort-on-exit stops everything when one ends": (
        "api: {cmd: run}\njobs: {cmd: work}\n# abort-on-exit",
        ["exit jobs 0"],
        [
            "spawn api",
            "spawn jobs",
            "jobs: exited 0",
            "devstack: jobs ended, stopping everything (--abort-on-exit)",
            "stop api",
            "api: stopped",
            "-> exit 0",
        ],
    ),
    "a ready probe holds its dependents back until it passes": (
        """
        db: {cmd: serve, ready: {log: accepting connections}}
        api: {cmd: run, depends_on: [db]}
        """,
        ["print db starting up", "print db accepting connections", "shutdown"],
        [
            "api: waiting for db (ready)",
            "spawn db",
            "db: ready",
            "spawn api",
            "stop api",
            "api: stopped",
            "stop db",
            "db: stopped",
            "-> exit 0",
        ],
    ),
    "its dependents are told why a service could not start": (
        """
        db: {cmd: serve}
        api: {cmd: run, depends_on: [db]}
        # fail-spawn db
        """,
        [],
        [
            "api: waiting for db (ready)",
            "db: could not start serve: Permission denied",
            "db: could not start",
            "api: not started: db could not start: Permission denied",
            "-> exit 1",
        ],
    ),
    "a bug stops everything, and the run ends with status 1": (
        "api: {cmd: run}\njobs: {cmd: work}\n# bug-spawn jobs",
        [],
        ["spawn api", "stop api", "api: stopped", "-> exit 1"],
    ),
    "a command that cannot start crashes its service": (
        "api: {cmd: run}\n# fail-spawn api",
        [],
        [
            "api: could not start run: Permission denied",
            "api: could not start",
            "-> exit 1",
        ],
    ),
}


def indented(services: str) -> str:
    lines = [line.strip() for line in services.strip().splitlines()]
    return "services:\n" + "".join(f"  {line}\n" for line in lines if not line.startswith("#"))


async def play(root: Path, services: str, steps: list[str]) -> tuple[list[str], Supervisor]:
    make_repo(root, indented(services))
    project = load_project(root / "devstack.yaml")
    marked = lambda mark: {line.split()[-1] for line in services.split("\n") if mark in line}  # noqa: E731
    world = World(fail_spawn=marked("fail-spawn"), bug_spawn=marked("bug-spawn"))
    supervisor = in_world(
        project,
        world,
        abort_on_exit="abort-on-exit" in services,
        wall_clock=lambda: 1_000.0 + world.now,
    )
    run = asyncio.ensure_future(supervisor.run())
    await idle()
    for step in steps:
        await perform(supervisor, world, step)
        await idle()
    status = await asyncio.wait_for(run, 5)
    world.log.append(f"-> exit {status}")
    return world.log, supervisor


commands: set[asyncio.Future[None]] = set()  # under way: a command returns once settled


async def perform(supervisor: Supervisor, world: World, step: str) -> None:
    words, _, reason = step.partition(" : ")
    verb, *args = words.split()
    if verb == "exit":
        world.processes[args[0]].exit(int(args[1]))
    elif verb == "print":
        world.print(args[0], " ".join(args[1:]))
    elif verb == "tick":
        world.tick(float(args[0]))
    elif verb in ("restart", "change"):
        commands.add(
            asyncio.ensure_future(supervisor.restart(args, reason, skip_stopped=verb == "change"))
        )
    elif verb == "stop":
        commands.add(asyncio.ensure_future(supervisor.stop(args)))
    elif verb == "start":
        commands.add(asyncio.ensure_future(supervisor.start(args)))
    elif verb == "shutdown":
        supervisor.request_shutdown()
    elif verb == "kill":
        supervisor.request_shutdown()
        supervisor.request_shutdown()
    else:
        raise AssertionError(f"unknown step {step!r}")


@pytest.mark.parametrize(("services", "steps", "log"), HISTORIES.values(), ids=list(HISTORIES))
def test_history(tmp_path: Path, services: str, steps: list[str], log: list[str]) -> None:
    played, _ = asyncio.run(play(tmp_path, services, steps))
    assert played == log


def test_a_restart_by_the_policy_gives_its_reason(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        _, supervisor = await play_and_keep(tmp_path, "api: {cmd: run, restart: on-failure}")
        return [status.reason for status in supervisor.status()]

    assert asyncio.run(scenario()) == ["exited 3 (restart: on-failure)"]


async def play_and_keep(root: Path, services: str) -> tuple[World, Supervisor]:
    """A crash of api (status 3) and the restart after its backoff; then a shutdown."""
    make_repo(root, indented(services))
    project = load_project(root / "devstack.yaml")
    world = World()
    supervisor = in_world(project, world)
    run = asyncio.ensure_future(supervisor.run())
    await idle()
    world.processes["api"].exit(3)
    await idle()
    world.tick(1)
    await idle()
    supervisor.request_shutdown()
    await run
    return world, supervisor


def test_status_snapshots_and_state_events_carry_the_restart_reason(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[ServiceStatus], list[tuple[str, str, str]]]:
        make_repo(tmp_path, indented("api: {cmd: run}"))
        project = load_project(tmp_path / "devstack.yaml")
        world = World()
        supervisor = in_world(project, world, ["api"], wall_clock=lambda: 1_000.0)
        events: list[tuple[str, str, str]] = []
        supervisor.subscribe_states(lambda s: events.append((s.name, s.state, s.reason)))
        run = asyncio.ensure_future(supervisor.run())
        await idle()
        await supervisor.restart(["api"], "app.py changed")
        snapshot = supervisor.status()
        supervisor.request_shutdown()
        await run
        return snapshot, events

    snapshot, events = asyncio.run(scenario())
    assert snapshot == [
        ServiceStatus("api", "running", 101, 1_000.0, 1, -15, None, reason="app.py changed")
    ]
    assert snapshot[0].uptime(1_012.5) == 12.5
    assert events == [
        ("api", "starting", ""),
        ("api", "running", ""),
        ("api", "restarting", "app.py changed"),
        ("api", "starting", "app.py changed"),
        ("api", "running", "app.py changed"),
        ("api", "stopping", "app.py changed"),
        ("api", "stopped", "app.py changed"),
    ]


def test_settled_waits_for_a_restart_under_way(tmp_path: Path) -> None:
    async def scenario() -> tuple[bool, bool]:
        make_repo(tmp_path, indented("api: {cmd: run}"))
        project = load_project(tmp_path / "devstack.yaml")
        world = World()
        supervisor = in_world(project, world, ["api"], clock=time.monotonic)  # real time
        run = asyncio.ensure_future(supervisor.run())
        await idle()
        restart = asyncio.ensure_future(supervisor.restart(["api"], "app.py changed"))
        await asyncio.sleep(0)  # the restart is under way: stopping the old instance
        settled = asyncio.ensure_future(supervisor.settled())
        await asyncio.sleep(0)
        during = settled.done()
        await restart
        await idle()
        after = settled.done()
        supervisor.request_shutdown()
        await run
        return during, after

    assert asyncio.run(scenario()) == (False, True)


def test_every_process_carries_the_markers_the_reaper_finds_it_by(tmp_path: Path) -> None:
    make_repo(tmp_path, indented("api: {cmd: run}"))
    project = load_project(tmp_path / "devstack.yaml")
    world = World()
    supervisor = Supervisor(
        project,
        resolve_project(project, {}, {}),
        ["api"],
        output=world,  # type: ignore[arg-type]
        run_id="run-1",
    )
    env = supervisor.service_env("api")
    assert (env["DEVSTACK_RUN_ID"], env["DEVSTACK_SERVICE"]) == ("run-1", "api")
    assert env["DEVSTACK_REPO"] == str(project.root)  # what runstate's stale cleanup reads
