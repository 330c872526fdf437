"""What devstack takes from the OS that not every OS has, behind one interface.

devstack's guarantees (no process left behind, no busy idle, a private control
socket) rest on a few mechanisms. `Platform` names them; two implementations
exist, and `current()` picks one once, at the first use (as psutil keeps a module
per OS and uvicorn picks its supervisor at start):

- orphans of the services: Linux makes devstack a child subreaper (prctl); the
  portable one has none, and relies on process groups, the `DEVSTACK_RUN_ID`
  marker sweep (psutil) and `membership`'s record, which a process escapes that
  daemonised and cleared its env before it was recorded.
- a process's parent, group and environment: /proc; psutil.
- waiting for a process to exit: pidfds (an event per process); kqueue's
  EVFILT_PROC where there is one (macOS, BSD), else a look in growing steps.
- the peer of the control socket: SO_PEERCRED; LOCAL_PEERCRED (getpeereid's
  source) on macOS and BSD, else the socket's private (0700) directory vouches.
- the file watcher's wake-up: SIGIO on watchfiles' inotify descriptor; none, so
  the watcher looks every 100 ms (`watcher.POLL_S`).
- a unix socket's path: 107 bytes (sun_path is 108); 103 (104 on macOS and BSD).

`DEVSTACK_PORTABLE=1` picks the portable implementation on Linux too: a test
switch, so that the paths macOS takes run on every `make test` here (issue 15).
The socket path limit stays the kernel's own: it is a fact of the OS, not a choice.

Nothing here imports psutil or asyncio at the top: the guardian's Python, started
once devstack is gone, imports this module and must act within milliseconds.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import time

TYPE_CHECKING = False  # not typing's, as in the guardian: see above
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable, Mapping
    from typing import Any, Protocol

    import psutil

__all__ = [
    "PORTABLE_VAR",
    "LinuxPlatform",
    "PortablePlatform",
    "choose",
    "current",
    "socket_path_limit",
]

PORTABLE_VAR = "DEVSTACK_PORTABLE"
# What a user of the portable implementation is told once by `devstack doctor`.
PORTABLE_CAVEAT = (
    "without a child subreaper, a process a service daemonises (double fork, setsid) and"
    " that also clears its environment (env -i) before devstack has recorded it (it looks"
    " every 2 s) escapes devstack's cleanup and may outlive it"
)

_PR_SET_CHILD_SUBREAPER = 36
_PR_GET_CHILD_SUBREAPER = 37
# macOS and the BSDs: getsockopt(SOL_LOCAL, LOCAL_PEERCRED) fills a struct xucred,
# {u_int cr_version; uid_t cr_uid; ...}; Python's socket module names neither.
_SOL_LOCAL = 0
_LOCAL_PEERCRED = 1
_XUCRED_SIZE = 128  # bigger than any xucred; the kernel copies what it has
POLL_CAP = 0.05  # seconds: the longest step of a wait that has to look (no pidfd, no kqueue)


def socket_path_limit(system: str) -> int:
    """Bytes a unix socket's path may have on `system` (a `sys.platform` value), its
    terminating NUL not counted: sun_path is 108 bytes on Linux, 104 on macOS and the
    BSDs (and assumed 104 elsewhere, the smaller)."""
    return 107 if system.startswith("linux") else 103


if TYPE_CHECKING:  # the interface, for the type checker (no `typing` at run time)

    class Platform(Protocol):
        """The mechanisms devstack needs that differ between operating systems."""

        name: str  # "linux" or "portable"
        procfs: bool  # Linux's /proc, pidfds and cgroup v2 are there to use
        socket_path_limit: int
        caveat: str  # a guarantee weaker here than on Linux, for doctor; "" if none

        def become_subreaper(self, enable: bool = True) -> bool:
            """Make orphaned descendants re-parent to this process; False where it cannot."""
            ...

        def is_subreaper(self) -> bool: ...

        def children(self, pid: int) -> set[int] | None:
            """The children of every thread of `pid`; None where that cannot be read cheaply
            (the caller asks psutil); an empty set if `pid` is gone."""
            ...

        def stat(self, pid: int) -> tuple[int, int, bool]:
            """(parent pid, process group, is a zombie) of `pid`; OSError or
            psutil.Error if it is gone."""
            ...

        def environ(self, pid: int) -> dict[str, str]:
            """The environment of `pid` ({} where it cannot be read: another user's)."""
            ...

        def pidfds(self, procs: Iterable[psutil.Process]) -> dict[int, psutil.Process] | None:
            """A descriptor per process still running, readable once it exits (for the
            event loop's `add_reader`); None where there are none."""
            ...

        def wait_gone(
            self, procs: Iterable[psutil.Process], timeout: float | None
        ) -> list[psutil.Process]:
            """Block until every process has exited or `timeout` (None: for ever); those
            still running. A zombie counts as gone."""
            ...

        async def await_gone(
            self, procs: Iterable[psutil.Process], timeout: float
        ) -> list[psutil.Process]:
            """`wait_gone` for the event loop: no thread; an event per exit where the
            OS has one (pidfds, kqueue), else looks in growing steps."""
            ...

        def peer_uid(self, sock: socket.socket) -> int | None:
            """The uid that can be at the other end of a connected unix socket."""
            ...

        def inotify_descriptors(self) -> set[int]:
            """This process's inotify descriptors (the watcher's doorbell); none elsewhere."""
            ...

        def create_cgroup(self, name: str) -> str | None:
            """Move this process into a new cgroup v2 directory `name` below its own;
            its path, or None where none is delegated to us (not Linux, cgroup v1
            only, not writable, refused)."""
            ...


def choose(system: str, environ: Mapping[str, str]) -> Platform:
    """The implementation for `system` (a `sys.platform` value) and `environ`."""
    if system.startswith("linux") and environ.get(PORTABLE_VAR, "") in ("", "0"):
        return LinuxPlatform()
    return PortablePlatform(socket_path_limit(system))


_current: list[Platform] = []


def current() -> Platform:
    """The implementation this process uses, chosen at the first call."""
    if not _current:
        _current.append(choose(sys.platform, os.environ))
    return _current[0]


# -- Linux -----------------------------------------------------------------------------


class LinuxPlatform:
    """The kernel's own answers: prctl, /proc, pidfds, SO_PEERCRED, inotify."""

    name = "linux"
    procfs = True
    socket_path_limit = socket_path_limit("linux")
    caveat = ""

    def become_subreaper(self, enable: bool = True) -> bool:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(enable), 0, 0, 0) == 0)

    def is_subreaper(self) -> bool:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        flag = ctypes.c_int(0)
        libc.prctl(_PR_GET_CHILD_SUBREAPER, ctypes.byref(flag), 0, 0, 0)
        return bool(flag.value)

    def children(self, pid: int) -> set[int] | None:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            return set()  # gone meanwhile
        except OSError:
            return None
        children: set[int] = set()
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as file:
                    children.update(int(child) for child in file.read().split())
            except FileNotFoundError:
                continue  # the thread ended meanwhile
            except OSError:
                return None  # a kernel without CONFIG_PROC_CHILDREN
        return children

    def stat(self, pid: int) -> tuple[int, int, bool]:
        with open(f"/proc/{pid}/stat", "rb") as file:
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            fields = file.read().rpartition(b")")[2].split()
        return int(fields[1]), int(fields[2]), fields[0] == b"Z"

    def environ(self, pid: int) -> dict[str, str]:
        # Straight from /proc: this runs for every process on the machine.
        try:
            with open(f"/proc/{pid}/environ", "rb") as file:
                raw = file.read()
        except OSError:
            return {}
        pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
        return {
            key.decode(errors="replace"): value.decode(errors="replace") for key, _, value in pairs
        }

    def pidfds(self, procs: Iterable[psutil.Process]) -> dict[int, psutil.Process] | None:
        # A pidfd, unlike a pid, cannot come to mean another process, and works for
        # processes that are not our children.
        if not hasattr(os, "pidfd_open"):
            return None
        fds: dict[int, psutil.Process] = {}
        for proc in procs:
            try:
                fd = os.pidfd_open(proc.pid)
            except ProcessLookupError:
                continue
            except OSError:  # ENOSYS: a kernel before 5.3
                for opened in fds:
                    os.close(opened)
                return None
            if proc.is_running():  # same create time: the pid was not reused meanwhile
                fds[fd] = proc
            else:
                os.close(fd)
        return fds

    def wait_gone(
        self, procs: Iterable[psutil.Process], timeout: float | None
    ) -> list[psutil.Process]:
        procs = list(procs)
        fds = self.pidfds(procs)
        if fds is None:
            return _wait_gone_with_psutil(procs, timeout)
        try:
            poller = select.poll()
            for fd in fds:
                poller.register(fd, select.POLLIN)
            deadline = None if timeout is None else time.monotonic() + timeout
            remaining = dict(fds)
            while remaining:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                for fd, _ in poller.poll(None if left is None else left * 1000):
                    poller.unregister(fd)
                    remaining.pop(fd, None)
            return list(remaining.values())
        finally:
            for fd in fds:
                os.close(fd)

    async def await_gone(
        self, procs: Iterable[psutil.Process], timeout: float
    ) -> list[psutil.Process]:
        procs = list(procs)
        fds = self.pidfds(procs)
        if fds is None:  # a kernel before 5.3
            return await _await_gone_by_looking(procs, timeout)
        return await _await_readable(fds, timeout)

    def peer_uid(self, sock: socket.socket) -> int | None:
        import socket
        import struct

        size = struct.calcsize("3i")
        credentials = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, size)
        _pid, uid, _gid = struct.unpack("3i", credentials)
        return int(uid)

    def create_cgroup(self, name: str) -> str | None:
        # Plain os calls: the fast start makes it before its first spawn, before
        # pathlib's or membership's imports (devstack.runtime.firstwave).
        parent = own_cgroup()
        if parent is None or not os.access(os.path.join(parent, "cgroup.procs"), os.W_OK):
            return None
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
        except OSError:
            return None
        try:
            with open(os.path.join(path, "cgroup.procs"), "w", encoding="ascii") as file:
                file.write(f"{os.getpid()}\n")
        except OSError:
            # Refused (the "no internal processes" rule, a foreign owner): not ours to use.
            with contextlib.suppress(OSError):
                os.rmdir(path)
            return None
        return path

    def inotify_descriptors(self) -> set[int]:
        found: set[int] = set()
        try:
            names = os.listdir("/proc/self/fd")
        except OSError:
            return found
        for name in names:
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/self/fd/{name}") == "anon_inode:inotify":
                    found.add(int(name))
        return found


# -- macOS, the BSDs, and Linux under DEVSTACK_PORTABLE=1 -------------------------------


class PortablePlatform:
    """What every Unix devstack runs on has: process groups, psutil, kqueue or polling."""

    name = "portable"
    procfs = False
    caveat = PORTABLE_CAVEAT

    def __init__(self, path_limit: int) -> None:
        self.socket_path_limit = path_limit

    def become_subreaper(self, enable: bool = True) -> bool:
        return False

    def is_subreaper(self) -> bool:
        return False

    def children(self, pid: int) -> set[int] | None:
        return None

    def stat(self, pid: int) -> tuple[int, int, bool]:
        import psutil

        proc = psutil.Process(pid)
        return proc.ppid(), os.getpgid(pid), proc.status() == psutil.STATUS_ZOMBIE

    def environ(self, pid: int) -> dict[str, str]:
        import psutil

        try:
            return psutil.Process(pid).environ()
        except psutil.AccessDenied:
            return {}

    def pidfds(self, procs: Iterable[psutil.Process]) -> dict[int, psutil.Process] | None:
        return None

    def wait_gone(
        self, procs: Iterable[psutil.Process], timeout: float | None
    ) -> list[psutil.Process]:
        procs = list(procs)
        if hasattr(select, "kqueue"):
            return _wait_gone_with_kqueue(procs, timeout)
        return _wait_gone_with_psutil(procs, timeout)

    async def await_gone(
        self, procs: Iterable[psutil.Process], timeout: float
    ) -> list[psutil.Process]:
        procs = list(procs)
        if not hasattr(select, "kqueue"):
            return await _await_gone_by_looking(procs, timeout)
        queue, remaining = _kqueue_of(procs)
        try:
            return await _await_kqueue(queue, remaining, timeout)
        finally:
            queue.close()

    def peer_uid(self, sock: socket.socket) -> int | None:
        import struct

        if sys.platform == "darwin" or "bsd" in sys.platform:
            xucred = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, _XUCRED_SIZE)
            return int(struct.unpack_from("=I", xucred, 4)[0])  # after cr_version
        return _uid_vouched_by_directory(sock)

    def inotify_descriptors(self) -> set[int]:
        return set()

    def create_cgroup(self, name: str) -> str | None:
        return None  # macOS has none (and none under DEVSTACK_PORTABLE=1, issue 15)


def close_inherited_on_exec() -> None:
    """Mark every descriptor devstack inherited close-on-exec: subprocess closes them
    all in the child (close_fds), which posix_spawn in Python 3.11 cannot. macOS
    lists a process's descriptors in /dev/fd (Linux's is a link to /proc/self/fd)."""
    for entry in os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"):
        fd = int(entry)
        if fd > 2:
            with contextlib.suppress(OSError):  # the listing's own descriptor, closed by now
                os.set_inheritable(fd, False)


def own_cgroup() -> str | None:
    """This process's cgroup v2 directory, if a cgroup2 file system is mounted (Linux)."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8") as file:
            relative = next((line.strip()[3:] for line in file if line.startswith("0::")), None)
        with open("/proc/self/mounts", encoding="utf-8") as file:
            mounts = [line.split()[1] for line in file if line.split()[2:3] == ["cgroup2"]]
    except OSError:
        return None
    if relative is None or not mounts:
        return None
    path = os.path.join(mounts[0], relative.lstrip("/"))
    return path if os.path.isdir(path) else None


def _uid_vouched_by_directory(sock: socket.socket) -> int | None:
    """Without peer credentials: the owner of the socket's directory if that is
    private (0700), since then only its owner (and root) could connect at all;
    None if it is open to others (`bind_socket` never makes such a socket)."""
    import stat

    path = sock.getsockname()
    if not isinstance(path, str) or not path:
        return None
    try:
        info = os.stat(os.path.dirname(path))
    except OSError:
        return None
    return None if stat.S_IMODE(info.st_mode) & 0o077 else info.st_uid


def _wait_gone_with_psutil(
    procs: list[psutil.Process], timeout: float | None
) -> list[psutil.Process]:
    """Look in growing steps (1 ms to POLL_CAP): nothing else tells of the exit of a
    process that is not our child. Not psutil's own wait, which takes a zombie (one
    whose parent has not reaped it yet) for a running process and waits on."""
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.001
    while True:
        alive = [proc for proc in procs if _running(proc)]
        left = None if deadline is None else deadline - time.monotonic()
        if not alive or (left is not None and left <= 0):
            return alive
        time.sleep(delay if left is None else min(delay, left))
        delay = min(delay * 2, POLL_CAP)


def _running(proc: psutil.Process) -> bool:
    """Still the process we found (same create time), and not a zombie."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _wait_gone_with_kqueue(
    procs: list[psutil.Process], timeout: float | None
) -> list[psutil.Process]:
    """EVFILT_PROC/NOTE_EXIT: the kernel says when each process exits (macOS, BSD)."""
    queue, remaining = _kqueue_of(procs)
    try:
        deadline = None if timeout is None else time.monotonic() + timeout
        while remaining:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            for event in queue.control(None, len(remaining), left):
                remaining.pop(event.ident, None)
        return list(remaining.values())
    finally:
        queue.close()


def _kqueue_of(procs: list[psutil.Process]) -> tuple[Any, dict[int, psutil.Process]]:
    """A kqueue told of each process's exit, and the processes still running by pid."""
    bsd: Any = select  # kqueue's names exist only on macOS and the BSDs
    queue = bsd.kqueue()
    remaining: dict[int, psutil.Process] = {}
    try:
        for proc in procs:
            watch = bsd.kevent(
                proc.pid,
                filter=bsd.KQ_FILTER_PROC,
                flags=bsd.KQ_EV_ADD | bsd.KQ_EV_ONESHOT,
                fflags=bsd.KQ_NOTE_EXIT,
            )
            try:
                queue.control([watch], 0, 0)
            except ProcessLookupError:
                continue  # gone already
            if _running(proc):
                remaining[proc.pid] = proc
    except BaseException:
        queue.close()
        raise
    return queue, remaining


async def _await_kqueue(
    queue: Any, remaining: dict[int, psutil.Process], timeout: float
) -> list[psutil.Process]:
    """The kqueue turns readable when a watched process exits: the loop waits on it."""
    import asyncio

    loop = asyncio.get_running_loop()
    all_gone = loop.create_future()

    def exited() -> None:
        for event in queue.control(None, max(len(remaining), 1), 0):
            remaining.pop(event.ident, None)
        if not remaining and not all_gone.done():
            all_gone.set_result(None)

    if not remaining:
        return []
    loop.add_reader(queue.fileno(), exited)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_gone, max(timeout, 0.0))
        return list(remaining.values())
    finally:
        loop.remove_reader(queue.fileno())


async def _await_readable(fds: dict[int, psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until each descriptor (a pidfd: readable once its process exited) is
    readable, at most `timeout`; the processes of those that are not. Closes them."""
    import asyncio

    loop = asyncio.get_running_loop()
    remaining = dict(fds)
    all_gone = loop.create_future()

    def exited(fd: int) -> None:
        loop.remove_reader(fd)
        remaining.pop(fd, None)
        if not remaining and not all_gone.done():
            all_gone.set_result(None)

    for fd in fds:
        loop.add_reader(fd, exited, fd)
    if not fds:
        all_gone.set_result(None)
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(all_gone, max(timeout, 0.0))
        return list(remaining.values())
    finally:
        for fd in fds:
            loop.remove_reader(fd)
            os.close(fd)


async def _await_gone_by_looking(
    procs: list[psutil.Process], timeout: float
) -> list[psutil.Process]:
    """Look in growing steps (1 ms to POLL_CAP), on the loop: nothing tells of the
    exit of a process that is not our child (Linux under DEVSTACK_PORTABLE=1)."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while True:
        alive = [proc for proc in procs if _running(proc)]
        left = deadline - loop.time()
        if not alive or left <= 0:
            return alive
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, POLL_CAP)
