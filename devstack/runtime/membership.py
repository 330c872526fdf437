"""Which processes belong to a run, however they hide (issue 11 §3).

A service's process may leave its session and group (`setsid`), clear its
environment (`env -i`) or rewrite its title (postgres): neither the process group
nor the `DEVSTACK_RUN_ID` marker finds it then. Three things still do:

- Ancestry. devstack is a child subreaper (Linux), so while it runs, everything a
  service started is below it, orphans included: `descendants_of`.
- A cgroup, where the system delegates one (a writable cgroup v2 directory, as
  systemd gives user services and containers give root): devstack moves itself
  into `<its cgroup>/devstack-<run id>` before the first spawn, so every process
  of the run is in it for good, and `cgroup.kill` ends all of them, even once
  devstack itself was SIGKILLed. Set `DEVSTACK_CGROUP=0` to do without.
- A record. `.devstack/members.json` (0600, written atomically) names the cgroup
  and each descendant seen (pid and start time, so a reused pid is never taken
  for one, and the service it was seen below), refreshed every CENSUS_INTERVAL
  seconds. The guardian and the next `up` read it; a service's stop asks the
  census for what it started that shed its marker and group.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.runtime import platform
from devstack.runtime.files import write_atomically

if TYPE_CHECKING:
    import psutil

RECORD = "members.json"
CENSUS_INTERVAL = 2.0  # seconds between looks at the process tree, without a cgroup
CGROUP_PREFIX = "devstack-"
CGROUP_VAR = "DEVSTACK_CGROUP"  # "0": no cgroup for the run


# -- processes ---------------------------------------------------------------------------


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (Linux), or its create time in
    milliseconds (elsewhere); None if it is gone. Tells a pid reused from another."""
    if platform.current().procfs:
        try:
            with open(f"/proc/{pid}/stat", "rb") as file:
                # "pid (comm) state ppid ...": field 22 is starttime; comm may hold ")".
                return int(file.read().rpartition(b")")[2].split()[19])
        except (OSError, IndexError, ValueError):
            return None
    import psutil

    try:
        return int(psutil.Process(pid).create_time() * 1000)
    except psutil.Error:
        return None


def descendants_of(pid: int) -> set[int]:
    """Every process below `pid` now (children, theirs, and so on)."""
    found: set[int] = set()
    pending = [pid]
    while pending:
        children = _children(pending.pop())
        if children is None:
            return _descendants_with_psutil(pid)
        for child in children - found:
            found.add(child)
            pending.append(child)
    return found


def _children(pid: int) -> set[int] | None:
    """The children of every thread of `pid` (/proc), or None where /proc cannot tell."""
    return platform.current().children(pid)


def _descendants_with_psutil(pid: int) -> set[int]:
    import psutil

    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.Error:
        return set()


# -- the cgroup --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunCgroup:
    """The run's own cgroup v2 directory, which devstack and all it starts are in."""

    path: Path

    @classmethod
    def create(cls, run_id: str, environ: Mapping[str, str] = os.environ) -> RunCgroup | None:
        """Move this process into a new cgroup for the run; None where no cgroup is
        delegated to us (not Linux, cgroup v1 only, not writable) or it is turned off."""
        # Not under DEVSTACK_PORTABLE=1 either: macOS has no cgroups (issue 15).
        if environ.get(CGROUP_VAR, "1") == "0":
            return None
        path = platform.current().create_cgroup(f"{CGROUP_PREFIX}{run_id}")
        return None if path is None else cls(Path(path))

    def pids(self) -> set[int]:
        return read_cgroup_pids(self.path)

    def leave_and_remove(self) -> None:
        """Move this process back to where it was and remove the cgroup, once what
        is left in it (nothing, after a sweep) is gone."""
        with contextlib.suppress(OSError):
            (self.path.parent / "cgroup.procs").write_text(f"{os.getpid()}\n")
        kill_cgroup(self.path)
        with contextlib.suppress(OSError):
            self.path.rmdir()


def own_cgroup() -> Path | None:
    """This process's cgroup v2 directory, if a cgroup2 file system is mounted."""
    path = platform.own_cgroup()
    return None if path is None else Path(path)


def read_cgroup_pids(path: Path) -> set[int]:
    try:
        return {int(pid) for pid in (path / "cgroup.procs").read_text().split()}
    except (OSError, ValueError):
        return set()


def kill_cgroup(path: Path, timeout: float = 2.0) -> None:
    """SIGKILL everything in the cgroup at `path` (`cgroup.kill`, Linux 5.14+, which
    no fork can race; or each process in turn) and wait up to `timeout` until it is
    empty, so that it can be removed."""
    try:
        (path / "cgroup.kill").write_text("1\n")
    except OSError:
        for pid in read_cgroup_pids(path):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    wait_empty(path, timeout)


def wait_empty(path: Path, timeout: float) -> bool:
    """Wait until no process is left in the cgroup: `cgroup.events` says `populated 0`
    and signals each change with POLLPRI, so this waits on events, not a timer."""
    import select
    import time

    deadline = time.monotonic() + timeout
    try:
        descriptor = os.open(path / "cgroup.events", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True  # removed already
    try:
        poller = select.poll()
        poller.register(descriptor, select.POLLPRI)
        while True:
            if b"populated 0" in os.pread(descriptor, 4096, 0):
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            poller.poll(left * 1000)
    except OSError:
        return True
    finally:
        os.close(descriptor)


# -- the record --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    started: int  # start_time(pid): a reused pid has another
    service: str | None  # the service it was seen below, if it ever was


class Census:
    """Who is below devstack now, and which service started each. An orphan adopted
    by devstack keeps the service it was seen below while its parent lived, so a
    restart of that service finds it too, without its marker or its group."""

    def __init__(self) -> None:
        self.members: dict[int, Member] = {}

    def take(self, mains: Mapping[int, str], exclude: Iterable[int] = ()) -> bool:
        """Look at the tree now (`mains`: each service's main pid and name); whether
        anything changed since the last look. Runs in a thread: one assignment."""
        owner: dict[int, str] = {}
        for main, name in mains.items():
            owner[main] = name
            owner.update(dict.fromkeys(descendants_of(main), name))
        members = {}
        for pid in descendants_of(os.getpid()) - set(exclude):
            started = start_time(pid)
            if started is None:
                continue
            old = self.members.get(pid)
            kept = old.service if old is not None and old.started == started else None
            members[pid] = Member(started, owner.get(pid, kept))
        changed = members != self.members
        self.members = members
        return changed

    def of_service(self, name: str) -> set[int]:
        """The pids seen below service `name` that still run (same start time)."""
        return {
            pid
            for pid, member in self.members.items()
            if member.service == name and start_time(pid) == member.started
        }


CENSUS = Census()  # this run's; `process` asks it when a service stops


def write_record(
    state_dir: Path, run_id: str, cgroup: RunCgroup | None, members: Mapping[int, Member]
) -> None:
    """`.devstack/members.json`: the run, its cgroup, and each member's pid, start time
    and service."""
    record = {
        "run_id": run_id,
        "cgroup": str(cgroup.path) if cgroup else None,
        "processes": sorted([pid, m.started, m.service] for pid, m in members.items()),
    }
    write_atomically(state_dir / RECORD, json.dumps(record) + "\n", 0o600)


def read_record(state_dir: Path) -> tuple[Path | None, dict[int, int]]:
    """The cgroup and the members (pid: start time) a record names (nothing, if it is
    missing or bad)."""
    try:
        record = json.loads((state_dir / RECORD).read_text(encoding="utf-8"))
        cgroup = Path(record["cgroup"]) if record.get("cgroup") else None
        members = {int(item[0]): int(item[1]) for item in record.get("processes", [])}
    except (OSError, ValueError, TypeError, KeyError, AttributeError, IndexError):
        return None, {}
    return cgroup, members


def still_running(members: Mapping[int, int]) -> list[int]:
    """The recorded members that still run: same pid, same start time."""
    return [pid for pid, started in members.items() if start_time(pid) == started]


def remove_record(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (state_dir / RECORD).unlink()


def leftovers(state_dir: Path, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """What a run that ended without cleaning up left, by its record and its cgroup;
    the cgroup is killed and removed on the way (nothing of it may outlive it)."""
    import psutil

    cgroup, members = read_record(state_dir)
    pids = set(still_running(members))
    if cgroup is not None and cgroup.name.startswith(CGROUP_PREFIX):
        pids |= read_cgroup_pids(cgroup)
    pids -= {os.getpid(), *exclude}
    found = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            found.append(psutil.Process(pid))
    return found


def members_now(cgroup: RunCgroup | None, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Every process of the run that runs now: below devstack, or in its cgroup."""
    import psutil

    pids = descendants_of(os.getpid()) | (cgroup.pids() if cgroup else set())
    pids -= {os.getpid(), *exclude}
    found = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            if proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def remove_cgroup(state_dir: Path) -> None:
    """Kill what is left in a dead run's cgroup, then remove it."""
    cgroup, _ = read_record(state_dir)
    if cgroup is None or not cgroup.name.startswith(CGROUP_PREFIX):
        return
    kill_cgroup(cgroup)
    with contextlib.suppress(OSError):
        cgroup.rmdir()
