"""One `devstack up` per repo: its state directory, the lock, the run id, run.json,
a stale run's leftovers.

`prepare_state_dir` makes `.devstack/` usable and private before anything goes in
it (issue 11 §2, §4): created 0700, tightened to 0700 if wider, followed if it is
a symlink (to a directory of the user's), refused with a clear message if it is a
file, belongs to another user or cannot be written; a `.gitignore` holding `*`
keeps it out of `git status`.

`acquire(project)` takes an exclusive `flock` on `.devstack/up.lock` (the kernel
drops it however devstack ends, so a dead run never blocks the next one), then,
if the previous run left its `run.json` behind (it did not exit cleanly), stops
every process still marked with that run's id or with this repo, and says so.
It writes `.devstack/run.json` (pid, run id, start time, control socket)
atomically, and removes it when the run ends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.core.errors import EXIT_FAILURE, DevstackError
from devstack.core.model import Project
from devstack.runtime.files import write_atomically

RECORD = "members.json"  # membership.RECORD, without its import at every start
LOCK_FILE = "up.lock"
RUN_FILE = "run.json"
STALE_GRACE = 5.0  # seconds a leftover gets between SIGTERM and SIGKILL


@dataclass(frozen=True)
class Run:
    """This `devstack up`: what other commands find in run.json."""

    run_id: str
    pid: int
    started_at: float  # wall-clock seconds
    repo: Path

    def as_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pid": self.pid,
            "started_at": self.started_at,
            "repo": str(self.repo),
        }


def read_run(state_dir: Path) -> dict[str, Any] | None:
    """The run.json of the current (or a dead) run, or None if absent or unreadable."""
    try:
        data = json.loads((state_dir / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def acquire(
    project: Project,
    *,
    say: Callable[[str], None] | None = None,
    held: tuple[int, str] | None = None,
) -> Iterator[Run]:
    """Hold the repo for one `devstack up`; raise DevstackError if another holds it.

    `say` gets one line about a previous run's leftovers, if any (default: stderr).
    `held`: the lock and run id the fast start took (devstack.runtime.firstwave), which found
    no leftovers to stop; the lock is released here at the end all the same.
    """
    state_dir = prepare_state_dir(project.root)
    # Close-on-exec (PEP 446): no service inherits the lock and keeps it after us.
    lock = held[0] if held else os.open(state_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _already_running(project) from None
        previous = read_run(state_dir)
        if previous is not None or (state_dir / RECORD).exists():
            stop_leftovers(project, previous or {}, say or _to_stderr)
        run = Run(
            run_id=held[1] if held else os.urandom(8).hex(),  # uuid would cost an import
            pid=os.getpid(),
            started_at=time.time(),
            repo=project.root,
        )
        write_atomically(state_dir / RUN_FILE, json.dumps(run.as_json(), indent=2) + "\n", 0o600)
        try:
            yield run
        finally:
            with contextlib.suppress(FileNotFoundError):
                (state_dir / RUN_FILE).unlink()
    finally:
        os.close(lock)  # releases the flock


STATE_DIR = ".devstack"
GITIGNORE = "*\n"  # everything in it is this machine's: logs, the socket, run state


def prepare_state_dir(root: Path) -> Path:
    """`root/.devstack`, a private directory of this user's (see the module doc);
    DevstackError saying what is wrong with it and how to fix it otherwise."""
    path = root / STATE_DIR
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as error:
        raise _state_dir_error(path, f"cannot be created: {error.strerror}") from None
    try:
        info = path.stat()  # follows a symlink: .devstack may live elsewhere
    except OSError as error:
        where = f" (a symlink to {os.readlink(path)})" if path.is_symlink() else ""
        raise _state_dir_error(path, f"cannot be used{where}: {error.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise _state_dir_error(path, "is a file, not a directory")
    if info.st_uid != os.getuid():
        raise _state_dir_error(
            path,
            f"belongs to uid {info.st_uid}, not to you (uid {os.getuid()})",
            f"`sudo chown -R $USER {path}`, or remove it",
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise _state_dir_error(path, "cannot be written")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    ignore = path / ".gitignore"
    if not ignore.exists():
        with contextlib.suppress(OSError):
            write_atomically(ignore, GITIGNORE, 0o600)
    return path


def _state_dir_error(path: Path, what: str, hint: str = "") -> DevstackError:
    return DevstackError.single(
        f"{path} {what}; devstack keeps its logs, control socket and run state there",
        hint=hint or "remove or rename it; devstack creates it again",
        exit_status=EXIT_FAILURE,
        code="state-dir",
    )


def stop_leftovers(project: Project, previous: dict[str, Any], say: Callable[[str], None]) -> None:
    """Stop what a run that did not exit cleanly left running (its guardian died too)."""
    from devstack.runtime.membership import leftovers, remove_cgroup, remove_record
    from devstack.runtime.reaper import describe, marked_processes, terminate

    run_ids = {previous["run_id"]} if isinstance(previous.get("run_id"), str) else set()
    ancestors = _ancestors()
    left = marked_processes(run_ids=run_ids, repo=str(project.root), exclude=ancestors)
    # Those that lost the marker (issue 11 §3), by the run's record and cgroup.
    left += [proc for proc in leftovers(project.state_dir, ancestors) if proc not in left]
    if not left:
        remove_cgroup(project.state_dir)
        remove_record(project.state_dir)
        return
    described = describe(left)  # before they are gone and their command lines with them
    pid = previous.get("pid", "?")
    survivors = terminate(left, STALE_GRACE)
    remove_cgroup(project.state_dir)
    remove_record(project.state_dir)
    message = f"stopped {described}, left running by a previous devstack up (pid {pid})"
    if survivors:
        message += f"; could not stop {describe(survivors)}"
    say(message)


def _already_running(project: Project) -> DevstackError:
    current = read_run(project.state_dir) or {}
    pid = current.get("pid")
    who = f" (pid {pid})" if isinstance(pid, int) else ""
    return DevstackError.single(
        f"devstack up is already running in {project.root}{who}",
        hint="use that one (devstack ps, logs, restart), or stop it with Ctrl+C or devstack down",
        exit_status=EXIT_FAILURE,
        code="already-running",
    )


def _ancestors() -> set[int]:
    """This process's ancestors: a shell started by an old service must survive."""
    import psutil

    with contextlib.suppress(psutil.Error):
        return {parent.pid for parent in psutil.Process().parents()}
    return set()


def _to_stderr(message: str) -> None:
    print(f"devstack: {message}", file=sys.stderr)
