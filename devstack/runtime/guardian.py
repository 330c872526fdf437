"""The guardian: a tiny process that ends a run's services if devstack dies.

devstack keeps the write end of a pipe whose read end is the guardian's stdin.
However devstack ends (a normal exit, a crash, even SIGKILL, which no handler
sees), the kernel closes that write end and the guardian's blocking read returns
EOF at once. It then finds every process whose environment carries the run's
`DEVSTACK_RUN_ID`, sends SIGTERM, waits `GRACE`, SIGKILLs the rest, says what it
did, and exits. After a normal exit there is nothing left to find and it exits at once.

It runs in a session of its own, so Ctrl+C at the terminal does not reach it.
While devstack runs, the guardian is a /bin/sh blocked in `read` (~0.3 MiB, where a
waiting Python took ~7 MiB); only at EOF does it exec Python, with `-I -S` (no
site-packages scan, no .pth files, no PYTHON* variables) and devstack's import path
passed along. On Linux that Python does its work with `os`, `select` and pidfds
alone, which is quick and keeps a pid reused meanwhile from being signalled;
elsewhere it falls back on `reaper` and psutil.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: the guardian's Python must act within milliseconds
if TYPE_CHECKING:
    from pathlib import Path

# Seconds between SIGTERM and SIGKILL, and then for SIGKILL to take effect. devstack
# is gone, so this is the emergency path: a moment to exit cleanly, and nothing of
# the run outlives devstack by a second.
GRACE = 0.5
COMMAND_WIDTH = 80  # a command line in the message is shortened to this

# Read stdin to its end (devstack never writes), then become the guardian's Python.
# The signals it ignores stay ignored in that Python.
# In / (it must hold no directory of the repo), whatever it was spawned in.
_WAIT = 'cd /; trap "" INT HUP PIPE; while read -r _; do :; done; exec "$@"'
# `-c`, not `-m`: under -I -S, devstack is found only once its import path is set.
_BOOT = (
    f"import sys; sys.path[:0] = sys.argv[1].split({os.pathsep!r}); "
    "from devstack.runtime.guardian import main; sys.exit(main())"
)

# The write end of the pipe (never written, never closed by hand) and the guardian.
_held: list[object] = []
RUN_ID_VAR = "DEVSTACK_RUN_ID"  # reaper's, without importing it before the first spawn


class _Spawned:
    """The guardian's process: spawned with os.posix_spawn, not a Popen (subprocess
    costs an import before the first spawn, issue 16); devstack never waits for it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid


def start_guardian(run_id: str, state_dir: Path) -> None:
    """Start the guardian for `run_id`; it outlives this process by a moment only."""
    from devstack.runtime.platform import close_inherited_on_exec

    argv = [
        "/bin/sh",
        "-c",
        _WAIT,
        "devstack-guardian",  # its $0, what `ps` shows first
        sys.executable,
        "-I",
        "-S",
        "-c",
        _BOOT,
        os.pathsep.join(import_path()),
        f"{RUN_ID_VAR}={run_id}",
        str(state_dir / "guardian.log"),
    ]
    close_inherited_on_exec()  # subprocess's close_fds, which posix_spawn has not
    read_end, write_end = os.pipe()  # both close-on-exec: services never inherit them
    try:
        guardian = _spawn(argv, read_end)
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    _held.extend((write_end, guardian))


def _spawn(argv: list[str], stdin: int) -> object:
    """The guardian's process, in a session of its own (Ctrl+C does not reach it),
    reading `stdin`, its stdout /dev/null (stderr stays: it tells the terminal what it
    did), SIGPIPE and SIGXFSZ back at their defaults, as subprocess would."""
    import signal

    try:
        pid = os.posix_spawn(
            argv[0],
            argv,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, stdin, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            ],
            setsid=True,
            setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
        )
    except NotImplementedError:  # no POSIX_SPAWN_SETSID (a macOS before 10.15)
        import subprocess

        return subprocess.Popen(
            argv, stdin=stdin, stdout=subprocess.DEVNULL, start_new_session=True
        )
    return _Spawned(pid)


def guardian_pids() -> set[int]:
    """The guardian's pid (a child of devstack, to be left alone by its sweeps)."""
    return {held.pid for held in _held if hasattr(held, "pid")}


def import_path() -> list[str]:
    """Where this devstack and its dependencies are imported from, as absolute paths
    (the guardian runs in /): devstack's own root first, which an editable install
    does not put on sys.path; entries that are no directory or zip file are left out."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    paths = [root, *(os.path.abspath(entry) for entry in sys.path)]
    return [path for path in dict.fromkeys(paths) if os.path.exists(path)]


def main() -> int:
    """The guardian's Python, once devstack is gone: `-c BOOT IMPORT_PATH MARKER LOG`."""
    _, marker, log = sys.argv[1:]
    return stop_run(marker, log)


def stop_run(marker: str, log: str) -> int:
    """End every process of the run: those whose environment holds `marker`
    ("DEVSTACK_RUN_ID=..."), and those the run's record and cgroup name, which may
    have lost the marker (`env -i`, a rewritten title: issue 11 §3); say so; 1 if
    one could not be stopped."""
    from devstack.runtime import membership

    state_dir = os.path.dirname(log)
    members = _recorded_members(state_dir)
    try:
        stopped, survivors = _stop_marked(marker.encode(), members)
    except _NoPidfds:
        stopped, survivors = _stop_marked_with_psutil(marker, state_dir)
    # Whatever is still in the run's cgroup (forked meanwhile) goes too, with it.
    membership.remove_cgroup(_path(state_dir))
    membership.remove_record(_path(state_dir))
    if not stopped:
        return 0
    message = f"devstack guardian: devstack is gone; stopped {_summary(stopped)}"
    if survivors:
        message += f"; could not stop {_summary(survivors)}"
    _report(message, log)
    return 1 if survivors else 0


class _NoPidfds(Exception):
    """Not Linux (or DEVSTACK_PORTABLE=1), or a kernel before 5.3: no pidfds to find
    and signal processes by."""


def _path(text: str) -> Path:
    from pathlib import Path

    return Path(text)


def _recorded_members(state_dir: str) -> set[int]:
    """The run's recorded processes still running (same start time) and the
    processes of its cgroup."""
    from devstack.runtime import membership

    cgroup, members = membership.read_record(_path(state_dir))
    pids = set(membership.still_running(members))
    if cgroup is not None and cgroup.name.startswith(membership.CGROUP_PREFIX):
        pids |= membership.read_cgroup_pids(cgroup)
    return pids - {os.getpid()}


def _stop_marked(marker: bytes, members: set[int]) -> tuple[list[str], list[str]]:
    """SIGTERM the marked processes and `members`, SIGKILL those still there after
    GRACE; the descriptions of all of them, and of those that outlived SIGKILL too."""
    import _signal
    import contextlib

    found = _marked(marker, members)
    try:
        left = set(found)
        for sig in (_signal.SIGTERM, _signal.SIGKILL):
            for fd in left:
                with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                    _signal.pidfd_send_signal(fd, sig)
            left = _still_running(left, GRACE)
        return list(found.values()), [found[fd] for fd in left]
    finally:
        for fd in found:
            os.close(fd)


def _marked(marker: bytes, members: set[int]) -> dict[int, str]:
    """A pidfd for each process whose environment holds `marker` or that is one of
    `members`, with its description.

    The pidfd is opened before the environment is read, so it is that process's for
    sure: were the pid reused meanwhile, the pidfd would stand for the one that ended.
    """
    from devstack.runtime import platform

    if not platform.current().procfs or not hasattr(os, "pidfd_open"):
        raise _NoPidfds
    me = os.getpid()
    found: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        try:
            fd = os.pidfd_open(int(name))
        except ProcessLookupError:
            continue
        except OSError as error:  # ENOSYS
            for opened in found:
                os.close(opened)
            raise _NoPidfds from error
        try:
            if int(name) in members or marker in _read(f"/proc/{name}/environ").split(b"\0"):
                found[fd] = f"pid {name} ({_command(name)})"
                continue
        except OSError:
            pass  # another user's, or gone
        os.close(fd)
    return found


def _still_running(pidfds: set[int], timeout: float) -> set[int]:
    """Wait up to `timeout` for the processes of `pidfds` to exit; those still running."""
    import select
    import time

    poller = select.poll()
    for fd in pidfds:
        poller.register(fd, select.POLLIN)  # readable once the process has exited
    left = set(pidfds)
    deadline = time.monotonic() + timeout
    while left and (remaining := deadline - time.monotonic()) > 0:
        for fd, _ in poller.poll(remaining * 1000):
            poller.unregister(fd)
            left.discard(fd)
    return left


def _read(path: str) -> bytes:
    with open(path, "rb") as file:
        return file.read()


def _command(pid: str) -> str:
    """A process's command line as shown to people, as `reaper.command_of` does."""
    from devstack.core.secrets import mask_argv  # imports only `re`

    try:
        argv = _read(f"/proc/{pid}/cmdline").rstrip(b"\0").split(b"\0")
        argv = argv if argv != [b""] else [_read(f"/proc/{pid}/comm").strip()]
    except OSError:
        argv = [b"?"]
    text = " ".join(mask_argv([word.decode(errors="replace") for word in argv]))
    return text if len(text) <= COMMAND_WIDTH else text[: COMMAND_WIDTH - 1] + "…"


def _stop_marked_with_psutil(marker: str, state_dir: str) -> tuple[list[str], list[str]]:
    from devstack.runtime.membership import leftovers
    from devstack.runtime.reaper import command_of, marked_processes, terminate

    _, _, run_id = marker.partition("=")
    left = marked_processes(run_ids={run_id})
    left += [proc for proc in leftovers(_path(state_dir)) if proc not in left]
    # Described now, while their command lines can still be read.
    stopped = [f"pid {proc.pid} ({command_of(proc)})" for proc in left]
    survivors = terminate(left, GRACE) if left else []
    return stopped, [f"pid {proc.pid} ({command_of(proc)})" for proc in survivors]


def _summary(described: list[str], limit: int = 3) -> str:
    """ "pid 12 (sleep 300), pid 13 (node server.js) and 2 more", as `reaper.describe`."""
    shown = ", ".join(described[:limit])
    return shown + (f" and {len(described) - limit} more" if len(described) > limit else "")


def _report(message: str, log: str) -> None:
    import contextlib
    import time

    with contextlib.suppress(OSError):
        print(message, file=sys.stderr, flush=True)
    line = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {message}\n".encode(errors="replace")
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    with contextlib.suppress(OSError):
        descriptor = os.open(log, flags, 0o600)  # private, as all of .devstack (issue 11 §4)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)
