"""Keeping track of every process a run starts, so none outlives it.

Owns three things:

- `become_subreaper`: on Linux, devstack becomes a child subreaper, so a service's
  grandchild that daemonises (double fork, setsid) is re-parented to devstack
  instead of init and stays within reach.
- `install_orphan_reaper`: such adopted orphans are devstack's children that
  asyncio knows nothing about; when they exit they must be reaped by us, without
  ever stealing the exit status of a child asyncio is waiting for.
- Finding processes by the markers devstack puts in every service's environment
  (`DEVSTACK_RUN_ID`, `DEVSTACK_SERVICE`, `DEVSTACK_REPO`) or by process group,
  waiting for them to vanish (pidfds: an event, not a polling loop) and
  terminating them with escalation. `process` and `runstate` use these, and the
  guardian where it has no pidfds.

psutil is imported inside the functions, and only where /proc cannot answer: its
import takes 25-35 ms, which neither the start of `devstack up` nor a restart pays.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from devstack.runtime import platform

if TYPE_CHECKING:
    import asyncio

    import psutil

RUN_ID_VAR = "DEVSTACK_RUN_ID"
SERVICE_VAR = "DEVSTACK_SERVICE"
REPO_VAR = "DEVSTACK_REPO"

# asyncio's child watcher reaps its own children as soon as they exit (a thread
# blocked in waitpid in 3.11, a pidfd reader in 3.12). A zombie still there this
# long after SIGCHLD is one nobody waits for: an adopted orphan.
ORPHAN_GRACE = 1.0


# -- subreaper -------------------------------------------------------------------------


def become_subreaper(enable: bool = True) -> bool:
    """Make orphaned descendants re-parent to this process (Linux); False elsewhere."""
    return platform.current().become_subreaper(enable)


def is_subreaper() -> bool:
    return platform.current().is_subreaper()


def own_children() -> list[Entry] | None:
    """This process's children as a scan would see them; None where that is unknown.

    Read from /proc/self/task/PID/children, not from the whole process table: the
    main thread forks the services, and the kernel hands adopted orphans to it too.
    """
    pids = platform.current().children(os.getpid())
    if pids is None:  # not Linux, or a kernel without CONFIG_PROC_CHILDREN
        return None
    children = []
    for pid in sorted(pids):
        with contextlib.suppress(OSError):  # gone meanwhile
            children.append(_entry(pid))
    return children


def reap_zombies_of_group(children: Iterable[Entry], pgid: int) -> None:
    """Reap the exited children of process group `pgid` now, not at the orphan sweep.

    Only adopted orphans are in a service's group (asyncio waits for the main
    process alone, which leads the group), so no exit status is stolen here.
    """
    for entry in children:
        if entry.zombie and entry.pgid == pgid and entry.pid != pgid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(entry.pid, os.WNOHANG)


def group_is_empty(pgid: int) -> bool:
    """No process, not even a zombie, is left in process group `pgid`."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a member we may not signal: still a member
        return False
    return False


# Main pids of service processes not yet reaped (by asyncio's child watcher): the
# orphan reaper leaves them alone. Here, not in process.py, which imports this module.
_live: set[int] = set()


def note_live(pid: int) -> None:
    _live.add(pid)


def forget_live(pid: int) -> None:
    _live.discard(pid)


def live_pids() -> set[int]:
    """Pids of service processes whose exit asyncio has not reported yet."""
    return set(_live)


def install_orphan_reaper(
    loop: asyncio.AbstractEventLoop,
    known_pids: Callable[[], Collection[int]] | None = None,
    *,
    grace: float = ORPHAN_GRACE,
) -> Callable[[], None]:
    """Reap adopted orphans on SIGCHLD; returns a function that uninstalls it.

    `known_pids` are children someone else waits for (default: the live service
    processes); they are never reaped here. asyncio's watchers (Threaded in 3.11,
    Pidfd in 3.12) wait for specific pids and do not use SIGCHLD, so this handler
    replaces nothing of theirs.
    """
    if known_pids is None:
        known_pids = live_pids
    reaper = _OrphanReaper(loop, known_pids, grace)
    loop.add_signal_handler(signal.SIGCHLD, reaper.child_exited)
    # One look as if a SIGCHLD came now: one may have come before the handler (the
    # fast start's services and guardian run before the loop, devstack.runtime.firstwave).
    reaper.child_exited()
    return reaper.uninstall


class _OrphanReaper:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        known_pids: Callable[[], Collection[int]],
        grace: float,
    ) -> None:
        self._loop = loop
        self._known_pids = known_pids
        self._grace = grace
        self._timer: asyncio.TimerHandle | None = None

    def child_exited(self) -> None:
        # One sweep per burst of exits, after asyncio had its chance to reap its own.
        if self._timer is None:
            self._timer = self._loop.call_later(self._grace, self.sweep)

    def sweep(self) -> None:
        self._timer = None
        known = set(self._known_pids())
        for pid in zombie_children():
            if pid not in known:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def uninstall(self) -> None:
        self._loop.remove_signal_handler(signal.SIGCHLD)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def zombie_children() -> list[int]:
    """Pids of this process's children that have exited and wait to be reaped."""
    children = own_children()
    if children is not None:
        return [entry.pid for entry in children if entry.zombie]
    import psutil

    zombies = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.status() == psutil.STATUS_ZOMBIE:
                zombies.append(child.pid)
    return zombies


# -- finding marked processes ----------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """One process as a scan saw it: its group and devstack's markers."""

    pid: int
    ppid: int
    pgid: int
    zombie: bool
    run_id: str | None
    service: str | None
    repo: str | None


@dataclass(frozen=True)
class Selector:
    """Which processes of a scan belong to a run, a service or a repo.

    A process matches when its `DEVSTACK_RUN_ID` is in `run_ids` (and, given
    `service`, its `DEVSTACK_SERVICE` is `service`), or its `DEVSTACK_REPO` is
    `repo`, or its process group is in `groups`; never when its pid is in `exclude`.
    """

    run_ids: frozenset[str] = frozenset()
    service: str | None = None
    repo: str | None = None
    groups: frozenset[int] = frozenset()
    exclude: frozenset[int] = frozenset()

    def matches(self, entry: Entry) -> bool:
        if entry.pid in self.exclude:
            return False
        if entry.pgid in self.groups:
            return True
        if entry.run_id in self.run_ids and self.service in (None, entry.service):
            return True
        return self.repo is not None and entry.repo == self.repo


def process_table() -> list[Entry]:
    """Every process but this one, with its group and markers (unreadable ones: none)."""
    import psutil

    me = os.getpid()
    entries = []
    for pid in psutil.pids():
        if pid == me:
            continue
        try:
            entries.append(_entry(pid))
        except (OSError, psutil.Error):
            continue  # gone meanwhile
    return entries


def _entry(pid: int) -> Entry:
    """How a scan sees `pid`; OSError (or psutil.Error) if it is gone."""
    ppid, pgid, zombie = _stat(pid)
    env = _environ(pid)
    return Entry(
        pid, ppid, pgid, zombie, env.get(RUN_ID_VAR), env.get(SERVICE_VAR), env.get(REPO_VAR)
    )


def descendants(table: Iterable[Entry], roots: Iterable[int]) -> set[int]:
    """Pids of the processes of `table` below any of `roots` (not the roots)."""
    children: dict[int, list[int]] = {}
    for entry in table:
        children.setdefault(entry.ppid, []).append(entry.pid)
    found: set[int] = set()
    pending = list(roots)
    while pending:
        for child in children.get(pending.pop(), ()):
            if child not in found:
                found.add(child)
                pending.append(child)
    return found


def _stat(pid: int) -> tuple[int, int, bool]:
    """(parent pid, process group, is a zombie) of `pid`."""
    return platform.current().stat(pid)


def select_live(table: Iterable[Entry], selector: Selector | None = None) -> list[psutil.Process]:
    """The processes of `table` (that `selector` matches) that still run: no zombies."""
    import psutil

    found = []
    for entry in table:
        if entry.zombie or (selector is not None and not selector.matches(entry)):
            continue
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(entry.pid))
    return found


def marked_processes(
    *,
    run_ids: Collection[str] = (),
    service: str | None = None,
    repo: str | None = None,
    groups: Collection[int] = (),
    exclude: Collection[int] = (),
) -> list[psutil.Process]:
    """Live processes found by marker or process group now (see `Selector`).

    Processes of other users cannot be read and never match by marker.
    """
    selector = Selector(frozenset(run_ids), service, repo, frozenset(groups), frozenset(exclude))
    return select_live(process_table(), selector)


def _environ(pid: int) -> dict[str, str]:
    return platform.current().environ(pid)


def describe(procs: Iterable[psutil.Process], limit: int = 3) -> str:
    """ "pid 12 (sleep 300), pid 13 (node server.js) and 2 more"."""
    procs = list(procs)
    shown = ", ".join(f"pid {proc.pid} ({command_of(proc)})" for proc in procs[:limit])
    return shown + (f" and {len(procs) - limit} more" if len(procs) > limit else "")


def command_of(proc: psutil.Process, width: int = 80) -> str:
    """A process's command line as shown to people, shortened to `width`."""
    import psutil

    from devstack.core.secrets import mask_argv

    try:  # masked before shortening, so a cut never leaves half a token (issue 11 §4)
        text = " ".join(mask_argv(proc.cmdline())) or proc.name()
    except psutil.Error:
        text = "?"
    return text if len(text) <= width else text[: width - 1] + "…"


# -- waiting and terminating -----------------------------------------------------------


def wait_gone(procs: Iterable[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Block until every process has exited or `timeout`; the ones still running.

    A zombie counts as gone: it holds no port and no file, and its parent reaps it.
    """
    return platform.current().wait_gone(procs, timeout)


def terminate(procs: Iterable[psutil.Process], grace: float) -> list[psutil.Process]:
    """SIGTERM, wait up to `grace`, SIGKILL the rest, wait again; the survivors."""
    procs = list(procs)
    send(procs, signal.SIGTERM)
    alive = wait_gone(procs, grace)
    if alive:
        send(alive, signal.SIGKILL)
        alive = wait_gone(alive, grace)
    return alive


def send(procs: Iterable[psutil.Process], sig: int) -> None:
    """Signal each process that is still the one we found (psutil checks the pid)."""
    import psutil

    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(sig)
