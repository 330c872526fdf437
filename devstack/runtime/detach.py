"""`devstack up -d`: the stack in the background, and the wait until it is up (issue 17).

The command re-executes `devstack up` as a daemon child: a session of its own (no
controlling terminal, so closing the terminal sends it nothing), stdin /dev/null,
stdout and stderr to `.devstack/up.log` (0600, rotated once past 5 MB). The child
is a foreground `up` in every other respect: the lock, the guardian (so even a
SIGKILL of it leaves nothing), the subreaper, the control socket, the watcher and
the per-service log files. Once every service it started has settled (ready,
running, exited or failed) it writes one line on a pipe the parent holds; the
parent then reads the services' rows through the control socket, as `ps` does, and
prints a summary. The pipe's end without that line means the child ended first: the
parent shows the end of up.log instead. Every wait is bounded: the child's by the
services' probe timeouts, the parent's by that plus a margin for the child's start.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, cast

from devstack.core.errors import EXIT_FAILURE, DevstackError

if TYPE_CHECKING:
    from devstack.core.model import Project
    from devstack.runtime.checker import UpOptions
    from devstack.runtime.supervisor import Supervisor

LOG_NAME = "up.log"
LOG_LIMIT = 5 * 1024 * 1024  # bytes of up.log before it becomes up.log.1, as service logs
BASE_WAIT = 30.0  # seconds for spawns and what has no probe, on top of the probes' timeouts
START_MARGIN = 15.0  # seconds the parent allows the child to start Python and check the config
EXIT_WAIT = 10.0  # seconds for a child that closed the pipe to finish exiting
TAIL_LINES = 10  # lines of a failed service's log shown
OK_STATES = frozenset({"ready", "running", "exited"})
# `up` options the child gets as given; the test of this module keeps the list complete.
FORWARDED = (
    "names", "no_deps", "excluded", "filters", "abort_on_exit", "timestamps", "env_overrides"
)  # fmt: skip

Outcome = Literal["settled", "ended", "timeout"]


def ready_timeout(project: Project, names: Sequence[str]) -> float:
    """How long the services may take to settle: each probe's timeout in turn (a chain
    of dependencies waits for each one), plus time for the spawns."""
    probes = [project.services[name].ready for name in names]
    return BASE_WAIT + sum(probe.timeout for probe in probes if probe is not None)


# -- the parent: `devstack up -d` -------------------------------------------------------


def start_in_background(project: Project, names: Sequence[str], args: UpOptions) -> int:
    """Start `up` as a daemon, wait until its services settle, print a summary; the exit
    status: 0 if every service came up, 1 if one failed or the wait ran out."""
    from devstack.runtime import runstate

    # The same "already running" error as a foreground `up`, and a dead run's leftovers
    # stopped here, where the user sees it; the child takes the lock again at once.
    with runstate.acquire(project):
        pass
    log_path = project.state_dir / LOG_NAME
    log = _open_log(log_path)
    log_start = os.fstat(log).st_size
    os.write(log, f"----- devstack up -d at {time.strftime('%Y-%m-%d %H:%M:%S')} -----\n".encode())
    read_end, write_end = os.pipe()
    try:
        child = subprocess.Popen(
            child_argv(project, args, write_end),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            start_new_session=True,
        )
    finally:
        os.close(write_end)
        os.close(log)
    began = time.monotonic()
    try:
        outcome = _await_settled(read_end, ready_timeout(project, names) + START_MARGIN)
    except KeyboardInterrupt:
        print(f"\nthe stack keeps starting in the background (pid {child.pid}); {_HOW_TO}")
        return 130
    finally:
        os.close(read_end)
    if outcome != "ended":
        try:
            return _report_summary(
                project, time.monotonic() - began, timed_out=outcome == "timeout"
            )
        except DevstackError as error:
            if error.problems[0].code != "not-running":
                raise
            # It settled and ended at once (--abort-on-exit): what it said tells why.
    return _report_early_end(child, log_path, log_start)


_HOW_TO = "devstack ps shows it, devstack logs its output, devstack down stops it"


def child_argv(project: Project, args: UpOptions, ready_fd: int) -> list[str]:
    """`python -m devstack -f CONFIG up ...` with this command's options, and the pipe."""
    argv = [sys.executable, "-m", "devstack", "-f", str(project.config_path), "up"]
    argv += args.names
    if args.no_deps:
        argv.append("--no-deps")
    for name in args.excluded:
        argv += ["--except", name]
    for item in args.filters:
        argv.append(f"--filter={item}")
    if args.abort_on_exit:
        argv.append("--abort-on-exit")
    if args.timestamps:
        argv.append("--timestamps")
    for item in args.env_overrides:
        argv.append(f"--env={item}")
    return [*argv, "--ready-fd", str(ready_fd)]


def _open_log(path: Path) -> int:
    """up.log for appending, private; the previous one moved to up.log.1 if it is big."""
    try:
        path.parent.mkdir(mode=0o700, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_size > LOG_LIMIT:
                os.replace(path, path.with_name(path.name + ".1"))
        return _open_private(path)
    except OSError as error:
        why = "it is a symbolic link" if error.errno == errno.ELOOP else error.strerror
        raise DevstackError.single(
            f"cannot write the background up's log {path}: {why}",
            hint="remove it (devstack creates it again), or run devstack up without -d",
            exit_status=EXIT_FAILURE,
        ) from None


def _open_private(path: Path) -> int:
    # O_NOFOLLOW: a symlink planted in .devstack must not redirect the log elsewhere.
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    os.fchmod(fd, 0o600)  # an older file of looser mode
    return fd


def _await_settled(fd: int, timeout: float) -> Outcome:
    """Wait on the pipe for the child's line: "settled", or "ended" at EOF without it."""
    deadline = time.monotonic() + timeout
    received = b""
    while (remaining := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            return "settled" if received.endswith(b"\n") else "ended"
        received += chunk
        if received.endswith(b"\n"):
            return "settled"
    return "timeout"


def _report_early_end(child: subprocess.Popen[bytes], log_path: Path, log_start: int) -> int:
    """The child ended before its services settled: what it said, and its status."""
    _wait_for_exit(child, EXIT_WAIT)
    status = child.poll()
    print(f"devstack up ended before the stack was up ({_describe_status(status)}):")
    for line in _new_lines(log_path, log_start)[-2 * TAIL_LINES :]:
        print(f"  {line}")
    return status if status else EXIT_FAILURE


def _describe_status(status: int | None) -> str:
    if status is None:
        return "still exiting"
    from devstack.core.policy import describe_exit

    return describe_exit(status)


def _wait_for_exit(child: subprocess.Popen[bytes], timeout: float) -> None:
    """Until our child has exited, at most `timeout` seconds (a pidfd or kqueue)."""
    import psutil

    from devstack.runtime import platform

    with contextlib.suppress(psutil.NoSuchProcess):
        platform.current().wait_gone([psutil.Process(child.pid)], timeout)


def _new_lines(path: Path, start: int) -> list[str]:
    """up.log's lines from byte `start` on (this run's), at most the last 64 KiB of them."""
    try:
        with path.open("rb") as file:
            end = file.seek(0, os.SEEK_END)
            file.seek(max(start, end - 64 * 1024))
            data = file.read()
    except OSError:
        return []
    return data.decode("utf-8", "replace").splitlines()


def _report_summary(project: Project, elapsed: float, *, timed_out: bool) -> int:
    from devstack.commands.restart import describe_outcome
    from devstack.runtime import control

    reply = control.request(project.root, "ps")
    rows: list[dict[str, Any]] = reply["services"]
    failed = [row for row in rows if not _came_up(row)]
    where = f"in the background (pid {reply['pid']})"
    if timed_out:
        print(f"devstack up: still starting after {elapsed:.0f}s, {where}")
    elif failed:
        count = f"{len(failed)} service{'s' if len(failed) > 1 else ''}"
        print(f"devstack up: running {where}, but {count} did not come up")
    else:
        print(f"devstack up: running {where}, up in {elapsed:.1f}s")
    for row in rows:
        line, _ = describe_outcome(row, OK_STATES)
        print(f"  {line}")
    from devstack.core import logfiles

    log_dir = logfiles.log_dir(project.root)
    for row in failed:
        _print_tail(row["name"], logfiles.log_file(log_dir, row["name"]), project)
    print(_HOW_TO)
    return EXIT_FAILURE if failed or timed_out else 0


def _came_up(row: dict[str, Any]) -> bool:
    """Up as asked: ready, running (and not a probe that gave up), or exited 0."""
    if row["state"] == "exited":
        return not row.get("last_exit")
    return row["state"] in OK_STATES and not (row.get("detail") or "").startswith("not ready")


def _print_tail(name: str, path: Path, project: Project) -> None:
    from devstack.runtime.control import tail_lines

    lines = tail_lines(path, TAIL_LINES)
    if lines:
        print(f"{name}: last lines of {project.display_path(path)}:")
        for line in lines:
            print(f"  {line}")


# -- the child: the background `devstack up` --------------------------------------------


def claim_ready_fd(fd: int) -> int:
    """The pipe to the parent, kept from every service this run spawns: were one to hold
    it, the parent would not see the pipe end if this process died."""
    os.set_inheritable(fd, False)
    return fd


async def report_when_settled(supervisor: Supervisor, ready_fd: int, timeout: float) -> None:
    """Tell the parent once every service settled, or `timeout` passed; then close the pipe."""
    import asyncio

    async def settled() -> None:
        # Before the first spawns every service is still "stopped": settled, but not started.
        await supervisor.first_spawns_done.wait()
        await supervisor.settled()

    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(settled(), timeout)
        with contextlib.suppress(OSError):  # the parent is gone (Ctrl+C): nobody to tell
            os.write(ready_fd, json.dumps({"settled": True}).encode() + b"\n")
    finally:
        os.close(ready_fd)


def log_stream(state_dir: Path) -> BinaryIO:
    """What the background `up` prints, to up.log (its stdout and stderr), rotated."""
    return cast(BinaryIO, RotatingLog(state_dir / LOG_NAME))


class RotatingLog:
    """stdout for `Output`: appends to up.log through fd 1; past `limit` it moves the
    file to up.log.1 and points fds 1 and 2 at a new one, so stderr follows too."""

    def __init__(self, path: Path, limit: int = LOG_LIMIT, fds: tuple[int, ...] = (1, 2)) -> None:
        self._path = path
        self._limit = limit
        self._fds = fds
        self._size = os.fstat(fds[0]).st_size

    def fileno(self) -> int:
        # No descriptor for `Output` to write to directly: every write must come here.
        import io

        raise io.UnsupportedOperation("fileno")

    def write(self, data: bytes) -> int:
        if self._size and self._size + len(data) > self._limit:
            self._rotate()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fds[0], view) :]
        self._size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def _rotate(self) -> None:
        try:
            os.replace(self._path, self._path.with_name(self._path.name + ".1"))
            fd = _open_private(self._path)
        except OSError:
            return  # keep appending to what fd 1 is: better a big log than a lost one
        for target in self._fds:
            os.dup2(fd, target)
        os.close(fd)
        self._size = 0
