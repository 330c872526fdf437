"""The file watcher: one watchfiles watcher for the whole repo, feeding the stack.

A batch of changes goes through the ignore filter, then a content
check (a write that leaves a file as it was, like `touch` or an editor saving unchanged
text, is no change), then `routing`. Services whose `watch` globs match are restarted,
concurrently; the supervisor coalesces a restart with one already under way. A change
of an env file or devstack.yaml reloads the config and env, checks them as `up` does,
and hands them to `StackAPI.apply`, which restarts exactly the services whose
command or environment changed; an invalid edit is reported and the stack keeps
running on the last good config.

An idle repo costs no wake-ups: the watcher waits for a `Doorbell` (SIGIO from
watchfiles' inotify descriptor) and only then asks watchfiles for the batch.
watchfiles itself is behind `runtime/notify.py`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import os
import signal
import stat
import struct
import sys
import threading
import time
import traceback
from bisect import bisect_left
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from functools import partial
from itertools import groupby
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.core.errors import DevstackError
from devstack.core.routing import GITIGNORE, IgnoreFilter, Router, Routing, WatchRules
from devstack.runtime.lean import blake2b
from devstack.runtime.notify import Notifier, RawChanges, open_notify, watch_errors

if TYPE_CHECKING:
    from devstack.core.envmodel import ProjectEnv
    from devstack.core.model import Project
    from devstack.runtime.checker import Reloaded
    from devstack.runtime.stackapi import Level, StackAPI

# How long the repo must be quiet before watchfiles hands a batch over: small, since
# it is most of the latency from a save to the restart.
STEP_MS = 5
# A batch ends when the repo is quiet for STEP_MS, or after this long at the latest.
# Not `debounce_ms`: a burst cut in the middle would restart a service twice.
BATCH_CAP_MS = 2_000
# A batch with this many paths is taken for a burst that may not be over yet: a save
# is one path, and a `git checkout` that the writer's scheduling cut after a few files
# (seen at 4 of 500 on a loaded 2-core machine) must still restart once.
BURST_PATHS = 2
# Batches bigger than this are hashed in a thread, so output keeps flowing meanwhile.
INLINE_HASH_LIMIT = 32
DIGEST_SIZE = 8  # bytes: a chance in 2**64 that an edit is taken for no change
# A path that is not a regular file, or cannot be read (any fixed 8 bytes would do).
UNHASHABLE = bytes(DIGEST_SIZE)
HASH_LIMIT = 4 * 1024 * 1024  # bytes (~4 ms to hash): a bigger file is not read at all
HASH_CHUNK = 256 * 1024  # read and hashed at a time
# After a ring, watchfiles' thread records the change within microseconds: look every
# CATCH_MS for CATCH_FOR_MS, then every STEP_MS until NOTIFY_LAG_MS (a busy machine);
# then the ring is taken for an event that changes nothing (opening a file rings too).
CATCH_MS = 1
CATCH_FOR_MS = 3
NOTIFY_LAG_MS = 20
# Once changes come, they are polled for (STEP_MS at a time, without a ring for each)
# until the repo has been quiet this long; then the doorbell is back.
BUSY_QUIET_MS = 20
# Without a ring, look anyway this often: for a change that watchfiles' thread
# recorded later than NOTIFY_LAG_MS after its ring, on a very busy machine.
SWEEP_S = 1.0
# Without a doorbell, look this often: the idle cost of a 100 ms poll, and at most
# that much more latency from a save to its restart (issue 15).
POLL_S = 0.1
# Linux's fcntl(2) values, which Python's fcntl module does not name.
F_SETOWN_EX = 15
F_OWNER_TID = 0

__all__ = ["Doorbell", "ProjectWatcher", "collect", "open_notify", "watch_project"]


async def watch_project(
    stack: StackAPI,
    *,
    shell: Mapping[str, str],
    cli_env: Mapping[str, str],
    set_up: asyncio.Event | None = None,
    shown: Iterable[str] = (),
) -> None:
    """Watch the repo and restart or reload what its changes concern, until cancelled;
    `set_up` is set once the watches are in place (or watching failed); `shown`: the
    doctor's warnings `up` printed, which a reload does not repeat."""
    watcher = ProjectWatcher(stack, shell=shell, cli_env=cli_env)
    watcher.warnings_shown.update(shown)
    if set_up is not None:
        watcher.set_up = set_up
    await watcher.run()


class ContentHashes:
    """The last seen content (a hash) of every file that matters, to tell real edits
    from writes that leave a file as it was.

    Every watched file has one for as long as `up` runs (10,000 in the idle benchmark),
    so they are kept dense (issue 16): by folder, so a folder's path is held once; in a
    folder, a sorted tuple of its interned file names (`index.ts` in a hundred folders is
    one string) and one bytearray of their 8-byte digests, in the same order: 16 bytes a
    file besides the names, where a dict of bytes objects took ~95.
    Safe to use from one thread at a time (the loop, or the thread it waits for)."""

    def __init__(self) -> None:
        self._folders: dict[str, tuple[tuple[str, ...], bytearray]] = {}

    def __contains__(self, path: str) -> bool:
        return self._get(*os.path.split(path)) is not None

    def remember(self, paths: Iterable[str]) -> None:
        """Hash and keep `paths` (a folder's paths together, as os.walk gives them)."""
        for folder, in_folder in groupby(paths, key=os.path.dirname):
            found = {os.path.basename(path): _digest(path) for path in in_folder}
            self._update(
                folder, {name: digest for name, digest in found.items() if digest is not None}
            )

    def changed(self, paths: Iterable[str]) -> list[str]:
        """The paths whose content differs from the last seen; remembers the new content."""
        changed: list[str] = []
        # New and removed names change a folder's layout: done at once per folder.
        pending: dict[str, dict[str, bytes | None]] = {}
        for path in dict.fromkeys(paths):
            folder, name = os.path.split(path)
            new, old = _digest(path), self._get(folder, name)
            if new is None and old is None:
                # Gone and never seen as a file: a temporary file (nothing below it), or
                # a folder removed or moved away, whose files are gone with it. Tested
                # before `new == old`, which None == None would take for "unchanged".
                self._apply(pending)
                changed += self._forget_below(path)
                continue
            if new == old:
                continue
            if new is not None and old is not None:
                self._overwrite(folder, name, new)
            else:
                pending.setdefault(folder, {})[name] = new
            changed.append(path)
        self._apply(pending)
        return changed

    def _get(self, folder: str, name: str) -> bytes | None:
        names, digests = self._folders.get(folder, ((), b""))
        index = bisect_left(names, name)
        if index == len(names) or names[index] != name:
            return None
        return bytes(digests[index * DIGEST_SIZE : (index + 1) * DIGEST_SIZE])

    def _overwrite(self, folder: str, name: str, digest: bytes) -> None:
        names, digests = self._folders[folder]
        index = bisect_left(names, name)
        digests[index * DIGEST_SIZE : (index + 1) * DIGEST_SIZE] = digest

    def _apply(self, pending: dict[str, dict[str, bytes | None]]) -> None:
        for folder, updates in pending.items():
            self._update(folder, updates)
        pending.clear()

    def _update(self, folder: str, updates: Mapping[str, bytes | None]) -> None:
        """Set (or, for None, drop) these names' digests, laying the folder out again."""
        if not updates:
            return
        names, digests = self._folders.get(folder, ((), bytearray()))
        kept: dict[str, bytes | None] = {
            name: bytes(digests[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE])
            for i, name in enumerate(names)
        }
        kept.update(updates)
        ordered = sorted(name for name, digest in kept.items() if digest is not None)
        if not ordered:
            self._folders.pop(folder, None)
            return
        layout = bytearray(b"".join(kept[name] or b"" for name in ordered))
        self._folders[folder] = (tuple(sys.intern(name) for name in ordered), layout)

    def holds_below(self, directory: str) -> bool:
        """Whether files below `directory` are remembered (a folder that may be gone)."""
        prefix = directory + os.sep
        return any(folder == directory or folder.startswith(prefix) for folder in self._folders)

    def _forget_below(self, directory: str) -> list[str]:
        prefix = directory + os.sep
        gone = []
        for folder in [f for f in self._folders if (f + os.sep).startswith(prefix)]:
            gone += [os.path.join(folder, name) for name in self._folders.pop(folder)[0]]
        return gone


def _digest(path: str) -> bytes | None:
    """A hash of the file's bytes; None if it is missing or a directory.

    Only a regular file is opened, and without blocking (issue 11 §2: a FIFO in a
    watched folder froze the loop): anything else, or what cannot be read, is
    UNHASHABLE. A file over HASH_LIMIT is told apart by size and mtime, not read.
    """
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return UNHASHABLE
    if stat.S_ISDIR(info.st_mode):
        return None
    if not stat.S_ISREG(info.st_mode):
        return UNHASHABLE
    if info.st_size > HASH_LIMIT:
        told_by = b"size-mtime:%d:%d" % (info.st_size, info.st_mtime_ns)
        return blake2b(told_by, digest_size=DIGEST_SIZE).digest()  # the store's 8 bytes
    try:
        # O_NONBLOCK: replaced by a FIFO since the stat, it still cannot block the open.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return UNHASHABLE
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return UNHASHABLE
        try:
            digest = blake2b(digest_size=DIGEST_SIZE)
            while chunk := file.read(HASH_CHUNK):
                digest.update(chunk)
            return digest.digest()
        except OSError:
            return UNHASHABLE


class ProjectWatcher:
    """The watcher's state: the routing of the current config and the content seen."""

    def __init__(
        self, stack: StackAPI, *, shell: Mapping[str, str], cli_env: Mapping[str, str]
    ) -> None:
        self.stack = stack
        self.shell = shell
        self.cli_env = cli_env
        self.hashes = ContentHashes()
        self.warnings_shown: set[str] = set()
        self.rules = WatchRules()  # compiled by a child (`_compile_rules`) when `run` starts
        self.router = self._router()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reloading = asyncio.Lock()
        self.set_up = asyncio.Event()  # the watches are in place, or watching failed

    @property
    def root(self) -> Path:
        return self.stack.project.root

    async def run(self) -> None:
        await self._compile_rules()
        await asyncio.to_thread(self._remember_watched)
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
        errors = watch_errors()
        try:
            # Adding a watch to every directory of a big repo takes a while: not on the loop.
            notify, descriptor = await asyncio.to_thread(open_notify, self.root)
        except errors as error:
            self._cannot_watch(error)
            return
        finally:
            self.set_up.set()
        feed = Feed(notify, batches)
        with notify:
            bell = Doorbell.install(descriptor)
            # The inotify watches exist now: every change from here on is seen.
            self._say(self.describe_watching())
            try:
                if bell is None:
                    await self._poll(feed)
                else:
                    await self._answer_rings(feed, bell)
            except errors as error:
                self._cannot_watch(error)
            finally:
                feed.stop.set()
                if bell is not None:
                    bell.close()  # before `notify` closes its descriptor, which may be reused

    async def _poll(self, feed: Feed) -> None:
        """Without a doorbell (no inotify descriptor: macOS, DEVSTACK_PORTABLE=1; the
        loop not in the main thread): look every POLL_S, and while changes keep coming,
        STEP_MS at a time (watchfiles' own STEP_MS polling cost 200 wake-ups a second)."""
        while True:
            busy = await self._take(feed, partial(look_every, feed.notify, POLL_S))
            while busy:
                busy = await self._take(
                    feed, partial(feed.notify.watch, BATCH_CAP_MS, STEP_MS, BUSY_QUIET_MS)
                )

    async def _answer_rings(self, feed: Feed, bell: Doorbell) -> None:
        """After a ring, take the change that rang and poll while more keep coming, the
        bell muted (a signal per event costs more than the polling); then wait for the
        next ring."""
        rang = True  # changes recorded before the bell was installed rang nobody
        while True:
            if rang:
                with bell.muted():
                    busy = await self._take(feed, partial(collect, feed.notify, NOTIFY_LAG_MS))
                    while busy:
                        busy = await self._take(
                            feed, partial(feed.notify.watch, BATCH_CAP_MS, STEP_MS, BUSY_QUIET_MS)
                        )
                # A change after the last look, while the bell was muted, rang nobody.
                rang = await self._take(feed, partial(collect, feed.notify, 1))
            else:
                rang = await bell.wait(SWEEP_S) or await self._take(
                    feed, partial(collect, feed.notify, 1)
                )

    async def _take(self, feed: Feed, fetch: Callable[[threading.Event], RawChanges]) -> bool:
        """Queue the paths of the batch `fetch` takes that the filter keeps, a burst
        whole; False if none came (a timeout)."""
        raw = await feed.fetch(fetch)
        if isinstance(raw, str):  # "timeout"; "stop" and "signal" only come after `stop`
            return False
        paths = self._kept(raw)
        if len(paths) >= BURST_PATHS:
            paths |= await self._rest_of_burst(feed)
        if paths:
            feed.batches.put_nowait(paths)
        return True

    def _cannot_watch(self, error: Exception) -> None:
        """The stack keeps running without restarts on change; say so, and how to fix it."""
        self._say(f"not watching for changes any more: {error}", "error")
        if "No space left on device" in str(error) or "max_user_watches" in str(error):
            self._say(
                "  hint: the inotify watch limit is reached; raise it with "
                "`sudo sysctl fs.inotify.max_user_watches=524288`",
                "error",
            )

    async def _rest_of_burst(self, feed: Feed) -> set[str]:
        """Many paths at once are a burst (a `git checkout`, a formatter) that may pause
        longer than STEP_MS, above all on a busy machine: take in what comes until the
        repo has been quiet for `debounce_ms`, so that the burst restarts once."""
        rest: set[str] = set()
        quiet = self.router.debounce_ms
        while True:
            started = time.monotonic()
            raw = await feed.fetch(partial(feed.notify.watch, BATCH_CAP_MS, quiet, quiet))
            more = set() if isinstance(raw, str) else self._kept(raw)
            rest |= more
            # A batch ends after `quiet` without news, unless BATCH_CAP_MS cut it short.
            if not more or time.monotonic() - started < BATCH_CAP_MS / 1000:
                return rest

    def _kept(self, raw: set[tuple[int, str]]) -> set[str]:
        keep = self.router.watch_filter
        return {path for change, path in raw if keep(change, path)}

    # -- one batch ---------------------------------------------------------------------

    async def _handle(self, paths: set[str]) -> None:
        candidates = [path for path in paths if self._concerns(path)]
        if not candidates:
            return
        if len(candidates) <= INLINE_HASH_LIMIT:
            changed = self.hashes.changed(candidates)
        else:
            changed = await asyncio.to_thread(self.hashes.changed, candidates)
        routing = self.router.route(changed)
        if routing.ignore_files:
            await self._compile_rules()
        for name, changed_paths in routing.services.items():
            reason = self.router.describe(name, changed_paths)
            self._spawn(self._restart(name, reason))
        if routing.env_changed or routing.config_changed:
            self._spawn(self._reload(routing))

    def _concerns(self, path: str) -> bool:
        # A folder removed or moved away is one event for its path, which a file glob
        # (`tasks/**/*.py`) does not match: it matters if watched files were below it.
        concerns = self.router.concerns(path)
        return concerns or (not os.path.lexists(path) and self.hashes.holds_below(path))

    async def _restart(self, name: str, reason: str) -> None:
        with contextlib.suppress(DevstackError):  # removed from the config meanwhile
            # Stopped on request (`devstack stop`): stays stopped until started again.
            await self.stack.restart([name], reason, skip_stopped=True)

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
            old_project, old_env = self.stack.project, self.stack.env
            what = self._what_changed(routing, old_project)
            loaded = await self._load(routing.config_changed, old_project, what)
            if loaded is None:
                return
            project, env = loaded.project, loaded.env
            if routing.config_changed:
                self._say(f"{what} changed, applying")
            else:
                names = changed_variables(old_env, env, self._names_in_run())
                listed = f" ({', '.join(names)})" if names else "; no service's environment changed"
                self._say(f"{what} changed{listed}")
            await self.stack.apply(project, env)
            self._use_rules(dataclasses.replace(self.rules, watches=loaded.watches))
            await asyncio.to_thread(self._remember_watched)

    async def _load(self, config_changed: bool, old_project: Project, what: str) -> Reloaded | None:
        """The new config and env, checked as `up` checks them, in a short-lived process
        (runtime/checker.py: the config code stays out of `up`); None if not good."""
        from devstack.runtime.checker import Rejected, ReloadRequest, recheck

        request = ReloadRequest(
            config_path=old_project.config_path,
            project=None if config_changed else old_project,
            shell=dict(self.shell),
            cli_env=dict(self.cli_env),
            selection=self.stack.selection(),
        )
        outcome = await recheck(request)
        if isinstance(outcome, Rejected):
            self._reject(what, outcome.problems)
            return None
        for text in outcome.warnings:
            self._warn_once(text)
        return outcome

    def _warn_once(self, text: str) -> None:
        """Say a warning unless it was said already (by `up`, or at an earlier reload)."""
        if text not in self.warnings_shown:
            self.warnings_shown.add(text)
            self._say(text, "warn")

    def _names_in_run(self) -> list[str]:
        return [status.name for status in self.stack.status()]

    def _reject(self, what: str, problems: Iterable[str]) -> None:
        self._say(f"{what} changed but cannot be used, keeping the last good config:", "error")
        for problem in problems:
            for line in problem.splitlines():
                self._say(line, "error")

    def _what_changed(self, routing: Routing, project: Project) -> str:
        paths = [project.config_path] if routing.config_changed else []
        return ", ".join(project.display_path(path) for path in (*paths, *routing.env_files))

    # -- what is watched ---------------------------------------------------------------

    async def _compile_rules(self) -> None:
        """The watch globs and .gitignore files, compiled by a child (pathspec stays out of
        `up`: core/globs.py), and the router rebuilt with them; the last rules are kept if
        the child fails."""
        from devstack.runtime.checker import compile_rules

        rules = await compile_rules(self.stack.project)
        if isinstance(rules, str):
            self._say(f"cannot read the watch rules, keeping the last ones: {rules}", "error")
            return
        self._use_rules(rules)

    def _use_rules(self, rules: WatchRules) -> None:
        """Route by `rules` from now on; say once each `watch` pattern they cannot read."""
        self.rules = rules
        self.router = self._router()
        services = self.stack.project.services
        for watch in rules.watches:
            for pattern in watch.unreadable if watch.name in services else ():
                self._warn_once(
                    f"{services[watch.name].location}: {watch.name}.watch pattern '{pattern}'"
                    " is not a glob devstack can read, so it matches nothing; hint: write it"
                    " as a .gitignore line (a trailing backslash escapes nothing: remove it)"
                )

    def _router(self) -> Router:
        project, env, rules = self.stack.project, self.stack.env, self.rules
        ignores = IgnoreFilter(project.root, gitignores=rules.gitignores, keep=env.env_files)
        return Router(project, env.env_files, ignores, rules.watches)

    def _remember_watched(self) -> None:
        """Hash every file that matters and is not hashed yet, so that the first write
        to it can already be told from an unchanged rewrite."""
        known = self.hashes
        inputs = [*self.router.kept(), *(str(d / GITIGNORE) for d in self.rules.gitignores)]
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
        services, in_run = self.stack.project.services, set(self._names_in_run())
        watched = [
            f"{name} ({', '.join(services[name].watch.paths)})"  # type: ignore[union-attr]
            for name in (watch.name for watch in self.router.watches)
            if name in in_run
        ]
        return "watching for changes: " + ", ".join([*watched, "env files", "devstack.yaml"])

    def _say(self, message: str, level: Level = "info") -> None:
        self.stack.say(message, level)


@dataclasses.dataclass(frozen=True)
class Feed:
    """A watchfiles watcher, the queue its batches go to, and how to end a `watch`."""

    notify: Notifier
    batches: asyncio.Queue[set[str]]
    stop: threading.Event = dataclasses.field(default_factory=threading.Event)

    async def fetch(self, fetch: Callable[[threading.Event], RawChanges]) -> RawChanges:
        """What `fetch` takes from watchfiles, in a thread (it blocks)."""
        loop = asyncio.get_running_loop()
        waiting = loop.run_in_executor(None, fetch, self.stop)
        try:
            return await asyncio.shield(waiting)
        except asyncio.CancelledError:
            # The rust side must have returned before `notify` may be closed.
            self.stop.set()
            await waiting
            raise


def collect(notify: Notifier, lag_ms: int, stop: threading.Event) -> RawChanges:
    """After a ring (blocking, for a thread): the change watchfiles' thread records
    within `lag_ms`, and what follows it until the repo is quiet for STEP_MS;
    "timeout" if nothing came.

    A save is usually seen ~2 ms after it and handed over STEP_MS later: no later
    than polling STEP_MS at a time, which takes 0.5 to 1 step to notice it."""
    first = notify.watch(BATCH_CAP_MS, CATCH_MS, min(lag_ms, CATCH_FOR_MS), stop)
    if first == "timeout" and lag_ms > CATCH_FOR_MS:  # late: a busy machine, or no change
        first = notify.watch(BATCH_CAP_MS, STEP_MS, lag_ms - CATCH_FOR_MS, stop)
    if isinstance(first, str):
        return first
    rest = notify.watch(BATCH_CAP_MS, STEP_MS, 1, stop)
    return first | rest if isinstance(rest, set) else first


def look_every(notify: Notifier, interval: float, stop: threading.Event) -> RawChanges:
    """Without a doorbell (blocking, for a thread): look for a change every `interval`
    seconds; the first batch, or "stop". The looks stay in the thread: a hop to the
    loop and back for each would cost three times the CPU of the look itself."""
    while not stop.wait(interval):
        found = collect(notify, 1, stop)
        if found != "timeout":
            return found
    return "stop"


class Doorbell:
    """Rings when the kernel queues an event on watchfiles' inotify descriptor, so that
    an idle repo costs no wake-ups.

    `Notifier.watch` (watchfiles) sleeps `step_ms` at a time and looks whether its thread has
    recorded a change: 200 wake-ups a second at STEP_MS, 0.11 of the 0.12 CPU seconds
    an idle `up` took per 10 s, and a longer step is a longer latency. So the watcher
    calls it only after a ring, and looks once a second besides (SWEEP_S).
    The ring is SIGIO (O_ASYNC on the descriptor, sent to the loop's thread), not the
    descriptor turning readable: watchfiles' thread reads the descriptor, and when it
    has read the event before the loop looks, a readable-check misses the change (one
    save in ~12 did, here). The kernel sends SIGIO as it queues each event.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, descriptor: int, flags: int) -> None:
        self._loop = loop
        self._descriptor = descriptor
        self._flags = flags & ~os.O_ASYNC
        self._rung = asyncio.Event()

    @classmethod
    def install(cls, descriptor: int | None) -> Doorbell | None:
        """The doorbell on `descriptor`; None where it cannot be installed (no descriptor,
        the loop not in the main thread), and the watcher polls instead."""
        if descriptor is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            bell = cls(loop, descriptor, fcntl.fcntl(descriptor, fcntl.F_GETFL))
            # The handler first: SIGIO's default action ends the process.
            loop.add_signal_handler(signal.SIGIO, bell._rung.set)
        except (OSError, ValueError, RuntimeError, NotImplementedError):
            return None
        try:
            # To the loop's thread only: no other thread has its sleep or read interrupted.
            owner = struct.pack("ii", F_OWNER_TID, threading.get_native_id())
            fcntl.fcntl(descriptor, F_SETOWN_EX, owner)
            bell._ring_on_events(True)
        except OSError:
            loop.remove_signal_handler(signal.SIGIO)
            return None
        return bell

    async def wait(self, timeout: float) -> bool:
        """Until the next ring (True) or `timeout` seconds without one (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._rung.wait()
        rang = self._rung.is_set()
        self._rung.clear()
        return rang

    @contextlib.contextmanager
    def muted(self) -> Iterator[None]:
        """No rings meanwhile: the watcher is looking anyway, and a busy repo would
        send a signal per event. Events meanwhile never ring: look once more after."""
        self._ring_on_events(False)
        try:
            yield
        finally:
            self._ring_on_events(True)
            self._rung.clear()

    def close(self) -> None:
        """Stop the rings; in the loop's thread, so a SIGIO already sent to it has been
        handled once O_ASYNC is off, and the default action (exit) may come back."""
        with contextlib.suppress(OSError):
            self._ring_on_events(False)
        self._loop.remove_signal_handler(signal.SIGIO)

    def _ring_on_events(self, on: bool) -> None:
        flags = self._flags | os.O_ASYNC if on else self._flags
        fcntl.fcntl(self._descriptor, fcntl.F_SETFL, flags)


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
