"""Launching a supervisor under test, timing its stdout, finding what it left behind.

A `Launched` tool runs in a session of its own (so a signal to its process group is
what a terminal's Ctrl+C would send) with stdout piped to a reader thread that stamps
every chunk with `time.perf_counter()`. Every process a benchmark starts carries the
run's marker in its environment, or runs under the scenario's directory; `marked`
finds them through psutil and `Launched.close` ends them by pid and process group.

A full-screen tool (mprocs) runs on a pseudo-terminal instead, and its services'
lines are read from the per-service log files it writes (`log_dir`), polled every
millisecond: its screen shows one service at a time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import struct
import subprocess
import termios
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

MARKER_VAR = "DEVSTACK_BENCH_MARKER"
PIPE_SIZE = 1 << 20  # F_SETPIPE_SZ: a roomy pipe, so the harness is never the bottleneck
F_SETPIPE_SZ = 1031
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")
TTY_SIZE = (50, 200)  # rows, columns of the terminal a full-screen tool is given
LOG_POLL = 0.001  # how often a tool's log files are read (adds up to this much)


def new_marker() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def tool_env(marker: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment every tool starts with: ours, no colour, plus the marker."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "CLICOLOR_FORCE")}
    env.update({MARKER_VAR: marker, "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    env.update(extra or {})
    return env


@dataclass
class Capture:
    """Timestamped stdout of a tool. `scan=False` keeps raw chunks only (throughput)."""

    scan: bool = True
    chunks: list[bytes] = field(default_factory=list)
    lines: list[tuple[float, bytes]] = field(default_factory=list)
    first_at: float | None = None
    last_at: float | None = None
    total: int = 0
    closed: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)
    _partial: bytes = b""

    def feed(self, chunk: bytes, now: float) -> None:
        with self.changed:
            self.first_at = self.first_at or now
            self.last_at = now
            self.total += len(chunk)
            self.chunks.append(chunk)
            if self.scan:
                *complete, self._partial = (self._partial + chunk).split(b"\n")
                self.lines.extend((now, ANSI.sub(b"", line)) for line in complete)
            self.changed.notify_all()

    def close(self) -> None:
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def wait_for(self, predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
        """Wait until `predicate()` (called with the lock held) is true, or time out."""
        with self.changed:
            return self.changed.wait_for(lambda: predicate() or self.closed, timeout) and bool(
                predicate()
            )

    def find(
        self, pattern: re.Pattern[bytes], start: int = 0
    ) -> Iterator[tuple[int, float, re.Match[bytes]]]:
        for index in range(start, len(self.lines)):
            at, line = self.lines[index]
            match = pattern.search(line)
            if match:
                yield index, at, match

    def text(self) -> str:
        return b"".join(self.chunks).decode("utf-8", "replace")


class Launched:
    """One tool under test: started in its own session, stdout captured, cleaned up."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        cwd: Path,
        marker: str,
        env: Mapping[str, str] | None = None,
        scan: bool = True,
        tty: bool = False,
        log_dir: Path | None = None,
    ) -> None:
        self.cwd = cwd
        self.marker = marker
        self.tty = tty
        self.capture = Capture(scan=scan)
        self.stderr_path = cwd / ".bench-stderr.log"
        if tty:
            read_end, write_end = os.openpty()
            fcntl.ioctl(write_end, termios.TIOCSWINSZ, struct.pack("HHHH", *TTY_SIZE, 0, 0))
        else:
            read_end, write_end = os.pipe()
            with contextlib.suppress(OSError):
                fcntl.fcntl(read_end, F_SETPIPE_SZ, PIPE_SIZE)
        with open(self.stderr_path, "ab") as stderr:
            self.launched_wall = time.time()
            self.started_at = time.perf_counter()
            self.proc = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env) if env is not None else tool_env(marker),
                stdin=write_end if tty else subprocess.DEVNULL,
                stdout=write_end,
                stderr=write_end if tty else stderr,
                start_new_session=True,
            )
        os.close(write_end)
        if log_dir is None:
            self._reader = threading.Thread(target=self._read, args=(read_end,), daemon=True)
        else:  # the screen is drained and dropped; the lines come from the log files
            threading.Thread(target=_drain, args=(read_end,), daemon=True).start()
            self._reader = threading.Thread(target=self._poll_logs, args=(log_dir,), daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self, fd: int) -> None:
        try:
            while chunk := os.read(fd, PIPE_SIZE):
                self.capture.feed(chunk, time.perf_counter())
        finally:
            os.close(fd)
            self.capture.close()

    def _poll_logs(self, log_dir: Path) -> None:
        """Feed the complete lines each log file gains, file by file (never torn)."""
        consumed: dict[Path, int] = {}
        try:
            while True:
                running = self.proc.poll() is None
                for path in sorted(log_dir.glob("*.log")) if log_dir.is_dir() else ():
                    with open(path, "rb") as log:
                        log.seek(consumed.get(path, 0))
                        data = log.read()
                    complete = data[: data.rfind(b"\n") + 1]
                    if complete:
                        consumed[path] = consumed.get(path, 0) + len(complete)
                        self.capture.feed(complete.replace(b"\r\n", b"\n"), time.perf_counter())
                if not running:
                    return
                time.sleep(LOG_POLL)
        finally:
            self.capture.close()

    def wait_tokens(self, pattern: re.Pattern[bytes], count: int, timeout: float) -> float | None:
        """Arrival time of the last of `count` distinct matches (group 1), or None."""
        seen: dict[bytes, float] = {}

        def enough() -> bool:
            for _, at, match in self.capture.find(pattern, enough.cursor):  # type: ignore[attr-defined]
                seen.setdefault(match.group(1), at)
            enough.cursor = len(self.capture.lines)  # type: ignore[attr-defined]
            return len(seen) >= count

        enough.cursor = 0  # type: ignore[attr-defined]
        if not self.capture.wait_for(enough, timeout):
            return None
        return max(seen.values())

    def signal(self, signum: int, *, group: bool) -> float:
        """Send `signum` to the tool (or its process group); return when it was sent."""
        sent_at = time.perf_counter()
        if group:
            os.killpg(self.proc.pid, signum)
        else:
            os.kill(self.proc.pid, signum)
        return sent_at

    def wait_exit(self, timeout: float) -> float | None:
        """When the tool exited (None if it did not within `timeout`)."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        return time.perf_counter()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def close(self, grace: float = 5.0) -> None:
        """End the tool gently (SIGINT to its group), then everything it left, by pid.
        A full-screen tool reads Ctrl+C as a key, not a signal: it is killed at once
        (how it shuts down is not measured)."""
        if self.proc.poll() is None and self.tty:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGINT)
            if self.wait_exit(grace) is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        kill_marked(self.marker, self.cwd, self.launched_wall)
        self._reader.join(5)


def _drain(fd: int) -> None:
    with contextlib.suppress(OSError):  # EIO once the terminal's last holder is gone
        while os.read(fd, 65536):
            pass
    os.close(fd)


def marked(marker: str, under: Path | None = None, since: float = 0.0) -> list[psutil.Process]:
    """Live processes carrying `marker` in their environment, or running under `under`
    and started at or after `since` (wall clock); never the harness or its parents."""
    harness = {os.getpid(), *(parent.pid for parent in psutil.Process().parents())}
    found = []
    for process in psutil.process_iter(["pid", "status"]):
        if process.pid in harness or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        try:
            environ = process.environ()
            in_tree = (
                under is not None
                and _is_under(process.cwd(), under)
                and process.create_time() >= since - 0.05  # create_time is rounded
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        if environ.get(MARKER_VAR) == marker or in_tree:
            found.append(process)
    return found


def _is_under(path: str, root: Path) -> bool:
    return path == str(root) or path.startswith(f"{root}{os.sep}")


def kill_marked(marker: str, under: Path | None = None, since: float = 0.0) -> int:
    """SIGKILL every marked process (and its group unless it is the harness's); return count."""
    processes = marked(marker, under, since)
    for process in processes:
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            pgid = os.getpgid(process.pid)
            if pgid != os.getpgid(0):
                os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=5)
    return len(processes)
