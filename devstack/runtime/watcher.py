"""The file watcher: one watchfiles watcher for the whole repo, feeding the supervisor.

A batch of changes goes through the ignore filter, then a content
check (a write that leaves a file as it was, like `touch` or an editor saving unchanged
text, is no change), then `routing`. Services whose `watch` globs match are restarted,
concurrently; the supervisor coalesces a restart with one already under way. A change
of an env file or devstack.yaml reloads the config and env, checks them as `up` does,
and hands them to `Supervisor.apply`, which restarts exactly the services whose
command or environment changed; an invalid edit is reported and the stack keeps
running on the last good config.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import os
import threading
import time
import traceback
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.errors import DevstackError, Problem
from devstack.routing import GITIGNORE, IgnoreFilter, Router, Routing, load_gitignores

if TYPE_CHECKING:
    from watchfiles._rust_notify import RustNotify

    from devstack.envresolve import ProjectEnv
    from devstack.model import Project
    from devstack.runtime.supervisor import Supervisor

# How long the repo must be quiet before watchfiles hands a batch over: small, since
# it is most of the latency from a save to the restart.
STEP_MS = 5
# A batch ends when the repo is quiet for STEP_MS, or after this long at the latest.
# Not `debounce_ms`: a burst cut in the middle would restart a service twice.
BATCH_CAP_MS = 2_000
# A batch with this many paths is taken for a burst that may not be over yet.
BURST_PATHS = 10
# Batches bigger than this are hashed in a thread, so output keeps flowing meanwhile.
INLINE_HASH_LIMIT = 32
UNHASHABLE = b""  # a path that is not a regular file, or cannot be read


async def watch_project(
    supervisor: Supervisor, *, shell: Mapping[str, str], cli_env: Mapping[str, str]
) -> None:
    """Watch the repo and restart or reload what its changes concern, until cancelled."""
    await ProjectWatcher(supervisor, shell=shell, cli_env=cli_env).run()


class ContentHashes:
    """The last seen content (a hash) of every file that matters, to tell real edits
    from writes that leave a file as it was."""

    def __init__(self) -> None:
        self.digests: dict[str, bytes] = {}

    def remember(self, paths: Iterable[str]) -> None:
        for path in paths:
            if (digest := _digest(path)) is not None:
                self.digests[path] = digest

    def changed(self, paths: Iterable[str]) -> list[str]:
        """The paths whose content differs from the last seen; remembers the new content."""
        changed = []
        for path in paths:
            new, old = _digest(path), self.digests.get(path)
            if new == old:
                continue
            if new is None and old is None:
                # Gone and never seen: a temporary file, or a directory moved away.
                changed += self._forget_below(path)
                continue
            if new is None:
                del self.digests[path]
            else:
                self.digests[path] = new
            changed.append(path)
        return changed

    def _forget_below(self, directory: str) -> list[str]:
        prefix = directory + os.sep
        gone = [path for path in list(self.digests) if path.startswith(prefix)]
        for path in gone:
            del self.digests[path]
        return gone


def _digest(path: str) -> bytes | None:
    """A hash of the file's bytes; None if it is missing, a directory or unreadable."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, lambda: hashlib.blake2b(digest_size=16)).digest()
    except (IsADirectoryError, FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return UNHASHABLE  # present but unreadable (permissions, a fifo): treat as changed


class ProjectWatcher:
    """The watcher's state: the routing of the current config and the content seen."""

    def __init__(
        self, supervisor: Supervisor, *, shell: Mapping[str, str], cli_env: Mapping[str, str]
    ) -> None:
        self.supervisor = supervisor
        self.shell = shell
        self.cli_env = cli_env
        self.hashes = ContentHashes()
        self._gitignores: dict[Path, Any] = {}
        self.router = self._router()  # without .gitignore rules until `run` reads them
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reloading = asyncio.Lock()
        self._warnings_shown: set[str] = set()

    @property
    def root(self) -> Path:
        return self.supervisor.project.root

    async def run(self) -> None:
        await asyncio.to_thread(self._load_ignores)
        await asyncio.to_thread(self._remember_watched)
        await asyncio.to_thread(self._note_warnings_shown_by_up)
        batches: asyncio.Queue[set[str]] = asyncio.Queue()
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._watch(batches))
                group.create_task(self._consume(batches))
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _consume(self, batches: asyncio.Queue[set[str]]) -> None:
        while True:
            paths = await batches.get()
            while not batches.empty():  # batches that came while the last was handled
                paths |= batches.get_nowait()
            await self._handle(paths)

    async def _watch(self, batches: asyncio.Queue[set[str]]) -> None:
        """Queue batches of changed paths, ignored ones dropped, bursts whole."""
        from watchfiles._rust_notify import RustNotify, WatchfilesRustInternalError

        stop = threading.Event()
        try:
            # Adding a watch to every directory of a big repo takes a while: not on the loop.
            notify = await asyncio.to_thread(
                RustNotify, [str(self.root)], False, False, 300, True, True
            )
        except (OSError, WatchfilesRustInternalError) as error:
            self._cannot_watch(error)
            return
        with notify:
            # The inotify watches exist now: every change from here on is seen.
            self._say(self.describe_watching())
            try:
                while True:
                    paths = await self._changes(notify, STEP_MS, 0, stop)
                    if len(paths) >= BURST_PATHS:
                        paths |= await self._rest_of_burst(notify, stop)
                    if paths:
                        batches.put_nowait(paths)
            except (OSError, WatchfilesRustInternalError) as error:
                self._cannot_watch(error)
            finally:
                stop.set()

    def _cannot_watch(self, error: Exception) -> None:
        """The stack keeps running without restarts on change; say so, and how to fix it."""
        self._say(f"not watching for changes any more: {error}", "error")
        if "No space left on device" in str(error) or "max_user_watches" in str(error):
            self._say(
                "  hint: the inotify watch limit is reached; raise it with "
                "`sudo sysctl fs.inotify.max_user_watches=524288`",
                "error",
            )

    async def _rest_of_burst(self, notify: RustNotify, stop: threading.Event) -> set[str]:
        """Many paths at once are a burst (a `git checkout`, a formatter) that may pause
        longer than STEP_MS, above all on a busy machine: take in what comes until the
        repo has been quiet for `debounce_ms`, so that the burst restarts once."""
        rest: set[str] = set()
        quiet = self.router.debounce_ms
        while True:
            started = time.monotonic()
            more = await self._changes(notify, quiet, quiet, stop)
            rest |= more
            # A batch ends after `quiet` without news, unless BATCH_CAP_MS cut it short.
            if not more or time.monotonic() - started < BATCH_CAP_MS / 1000:
                return rest

    async def _changes(
        self, notify: RustNotify, step_ms: int, timeout_ms: int, stop: threading.Event
    ) -> set[str]:
        """The next batch of paths the filter keeps (empty on a timeout)."""
        loop = asyncio.get_running_loop()
        waiting = loop.run_in_executor(None, notify.watch, BATCH_CAP_MS, step_ms, timeout_ms, stop)
        try:
            raw = await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The rust side must have returned before `notify` may be closed.
            stop.set()
            await waiting
            raise
        if isinstance(raw, str):  # "timeout"; "stop" and "signal" only come after `stop`
            return set()
        keep = self.router.watch_filter
        return {path for change, path in raw if keep(change, path)}

    # -- one batch ---------------------------------------------------------------------

    async def _handle(self, paths: set[str]) -> None:
        candidates = [path for path in paths if self.router.concerns(path)]
        if not candidates:
            return
        if len(candidates) <= INLINE_HASH_LIMIT:
            changed = self.hashes.changed(candidates)
        else:
            changed = await asyncio.to_thread(self.hashes.changed, candidates)
        routing = self.router.route(changed)
        if routing.ignore_files:
            await asyncio.to_thread(self._load_ignores)
        states = {status.name: status.state for status in self.supervisor.status()}
        for name, changed_paths in routing.services.items():
            # Stopped on request (`devstack stop`): stays stopped until started again.
            if states.get(name, "stopped") != "stopped":
                reason = self.router.describe(name, changed_paths)
                self._spawn(self._restart(name, reason))
        if routing.env_changed or routing.config_changed:
            self._spawn(self._reload(routing))

    async def _restart(self, name: str, reason: str) -> None:
        with contextlib.suppress(DevstackError):  # removed from the config meanwhile
            await self.supervisor.restart([name], reason)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._reporting(coroutine))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reporting(self, coroutine: Coroutine[Any, Any, None]) -> None:
        try:
            await coroutine
        except Exception as error:  # a bug here must not stop watching
            text = "".join(traceback.format_exception(error)).rstrip()
            self._say(f"internal error in the file watcher:\n{text}", "error")

    # -- reloading the config and env --------------------------------------------------

    async def _reload(self, routing: Routing) -> None:
        # One at a time: a second edit during a reload is read by the next one.
        async with self._reloading:
            old_project, old_env = self.supervisor.project, self.supervisor.env
            what = self._what_changed(routing, old_project)
            loaded = self._load(routing.config_changed, old_project, what)
            if loaded is None:
                return
            project, env = loaded
            if routing.config_changed:
                self._say(f"{what} changed, applying")
            else:
                names = changed_variables(old_env, env, self.supervisor.units)
                listed = f" ({', '.join(names)})" if names else "; no service's environment changed"
                self._say(f"{what} changed{listed}")
            await self.supervisor.apply(project, env)
            await asyncio.to_thread(self._load_ignores)
            await asyncio.to_thread(self._remember_watched)

    def _load(
        self, config_changed: bool, old_project: Project, what: str
    ) -> tuple[Project, ProjectEnv] | None:
        """The new config and env, checked as `up` checks them; None if they are not good."""
        from devstack.config import load_project
        from devstack.doctor import diagnose
        from devstack.envresolve import resolve_project

        try:
            project = load_project(old_project.config_path) if config_changed else old_project
        except DevstackError as error:
            self._reject(what, error.problems)
            return None
        env = resolve_project(project, self.shell, self.cli_env)
        problems = diagnose(self._in_this_run(project, old_project), env, check_ports=False)
        errors = [problem for problem in problems if problem.severity == "error"]
        if errors:
            self._reject(what, errors)
            return None
        for problem in problems:
            if (text := problem.render()) not in self._warnings_shown:
                self._warnings_shown.add(text)
                self._say(text, "warn")
        return project, env

    def _note_warnings_shown_by_up(self) -> None:
        """`up` printed the doctor's warnings already: a reload repeats only new ones."""
        from devstack.doctor import diagnose

        project = self.supervisor.project
        problems = diagnose(
            self._in_this_run(project, project), self.supervisor.env, check_ports=False
        )
        self._warnings_shown |= {problem.render() for problem in problems}

    def _in_this_run(self, project: Project, old_project: Project) -> Project:
        """Only the services this run has or will start: one left out must not block it."""
        supervisor = self.supervisor
        names = [
            name
            for name, service in project.services.items()
            if name in supervisor.units
            or (
                name not in old_project.services
                and service.autostart
                and supervisor.start_new_services
            )
        ]
        return dataclasses.replace(project, services={n: project.services[n] for n in names})

    def _reject(self, what: str, problems: Iterable[Problem]) -> None:
        self._say(f"{what} changed but cannot be used, keeping the last good config:", "error")
        for problem in problems:
            for line in problem.render().splitlines():
                self._say(line, "error")

    def _what_changed(self, routing: Routing, project: Project) -> str:
        paths = [project.config_path] if routing.config_changed else []
        return ", ".join(project.display_path(path) for path in (*paths, *routing.env_files))

    # -- what is watched ---------------------------------------------------------------

    def _load_ignores(self) -> None:
        """(Re)build the router for the current config, env files and .gitignore files."""
        self._gitignores = load_gitignores(self.root)
        self.router = self._router()

    def _router(self) -> Router:
        project, env = self.supervisor.project, self.supervisor.env
        ignores = IgnoreFilter(project.root, gitignores=self._gitignores, keep=env.env_files)
        return Router(project, env.env_files, ignores)

    def _remember_watched(self) -> None:
        """Hash every file that matters and is not hashed yet, so that the first write
        to it can already be told from an unchanged rewrite."""
        known = self.hashes.digests
        inputs = [*self.router.kept(), *(str(d / GITIGNORE) for d in self._gitignores)]
        self.hashes.remember(path for path in inputs if path not in known)
        ignores = self.router.watch_filter
        for base in self.router.watch_bases:
            for directory, subdirs, files in os.walk(base):
                subdirs[:] = [
                    d for d in subdirs if not ignores.ignores(os.path.join(directory, d), True)
                ]
                paths = (os.path.join(directory, name) for name in files)
                self.hashes.remember(
                    path
                    for path in paths
                    if path not in known and ignores(None, path) and self.router.services_for(path)
                )

    def describe_watching(self) -> str:
        """`watching for changes: jobs (tasks/**/*.py), env files, devstack.yaml`."""
        services = self.supervisor.project.services
        watched = [
            f"{name} ({', '.join(services[name].watch.paths)})"  # type: ignore[union-attr]
            for name in (watch.name for watch in self.router.watches)
            if name in self.supervisor.units
        ]
        return "watching for changes: " + ", ".join([*watched, "env files", "devstack.yaml"])

    def _say(self, message: str, level: str = "info") -> None:
        self.supervisor.output.system(None, message, level)  # type: ignore[arg-type]


def changed_variables(old: ProjectEnv, new: ProjectEnv, names: Iterable[str]) -> list[str]:
    """Names (never values: some are secrets) whose value changed for any of `names`."""
    changed: set[str] = set()
    for name in names:
        if name in old.services and name in new.services:
            before, after = old.services[name].values, new.services[name].values
            changed |= {
                key for key in before.keys() | after.keys() if before.get(key) != after.get(key)
            }
    return sorted(changed)
