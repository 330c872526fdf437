"""The only terminal writer: services' raw output framed into whole lines, prefixed,
written to the terminal, to `.devstack/logs/<service>.log` and to subscribers.

Bytes from a pipe or pty arrive in whatever chunks the kernel hands over. Each
(service, stream) keeps its unfinished line; the complete lines of a chunk go out in
one write, so a line is never torn and lines of different services never mix. An
unfinished line (a prompt) is shown once it has waited `partial_delay` seconds.
Writes block until done: a slow terminal slows devstack down rather than losing lines;
a terminal that went away (closed pipe, hung-up tty) is dropped and the stack runs on.
"""

from __future__ import annotations

import contextlib
import io
import os
import select
import stat
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from devstack.core import logfiles, logfmt

if TYPE_CHECKING:
    import asyncio  # imported when a timer is armed: the fast start shows lines before it

Stream = Literal["out", "err"]
Subscriber = Callable[[str, list[str]], None]

PARTIAL_DELAY = 0.15  # seconds an unfinished line waits for its newline before it is shown
LOG_LIMIT = 5 * 1024 * 1024  # bytes per log file before it becomes <service>.log.1
RETRY_AFTER = 5.0  # seconds before a log that could not be written is tried again


class Output:
    """Every line devstack shows: services' output and devstack's own messages."""

    def __init__(
        self,
        names: Iterable[str],
        *,
        stream: BinaryIO,
        color: bool,
        timestamps: bool,
        log_dir: Path | None,
        clock: Callable[[], float] = time.time,
        partial_delay: float = PARTIAL_DELAY,
        log_limit: int = LOG_LIMIT,
    ) -> None:
        self._names = list(dict.fromkeys(names))
        self._colour = color
        self._timestamps = timestamps
        self._style = logfmt.LineStyle(self._names, color, timestamps)
        self._terminal = _Terminal(stream)
        self._logs = _LogFiles(log_dir, log_limit, self._log_failed, self._log_resumed)
        self._clock = clock
        self._partial_delay = partial_delay
        self._pending: dict[tuple[str, Stream], bytearray] = {}
        self._since: dict[tuple[str, Stream], float] = {}  # when each unfinished line began
        self._timers: dict[tuple[str, Stream], asyncio.TimerHandle] = {}
        self._subscribers: list[Subscriber] = []

    # -- services come and go (config reload) ------------------------------------------

    def add_service(self, name: str) -> None:
        if name not in self._names:
            self._names.append(name)
            self._restyle()

    def remove_service(self, name: str) -> None:
        for stream in ("out", "err"):
            self._flush_partial((name, stream))
        self._logs.close(name)
        if name in self._names:
            self._names.remove(name)
            self._restyle()

    def _restyle(self) -> None:
        kept = {name: c for name, c in self._style.colours.items() if name in self._names}
        self._style = logfmt.LineStyle(self._names, self._colour, self._timestamps, kept)

    # -- service output ----------------------------------------------------------------

    def feed(self, name: str, stream: Stream, data: bytes) -> None:
        """Raw bytes from one of a service's streams, as read."""
        key = (name, stream)
        pending = self._pending.get(key)
        if pending is not None:
            if b"\n" not in data and len(pending) + len(data) <= logfmt.MAX_LINE:
                pending += data  # still no whole line: nothing to show yet
                return
            data = b"".join((pending, data))
            del self._pending[key]
        lines, rest = logfmt.split_lines(data)
        if lines:
            self._emit(name, lines)
        if rest:
            self._pending[key] = bytearray(rest)
            if lines or pending is None:
                self._since[key] = time.monotonic()
            if key not in self._timers:
                self._arm_timer(key, self._partial_delay)

    def resume(self, name: str) -> None:
        """The loop runs now: `name`'s unfinished lines, fed before it did (the fast
        start), get the wait they would have had."""
        for stream in ("out", "err"):
            key = (name, stream)
            if key in self._pending and key not in self._timers:
                self._arm_timer(key, self._partial_delay)

    def end_stream(self, name: str, stream: Stream) -> None:
        """The stream ended: its unfinished line is shown as it is."""
        self._flush_partial((name, stream))

    def started(self, name: str, pid: int) -> None:
        """A new instance of `name` runs: said before its first line, and its log file
        gets a separator line."""
        self.system(name, f"started (pid {pid})")
        self._logs.write(name, logfmt.start_separator(pid, self._clock()))

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call `callback(service, lines)` with each batch of a service's lines (as text,
        without colour codes); returns the function that ends it."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)

        return unsubscribe

    def _emit(self, name: str, lines: list[bytes]) -> None:
        self._terminal.write(self._style.lines(name, lines, self._clock()))
        if self._logs.enabled or self._subscribers:
            plain = logfmt.strip_ansi(b"\n".join(lines) + b"\n")
            self._logs.write(name, plain)
            if self._subscribers:
                # One decode per batch: a newline never belongs to a multi-byte sequence,
                # so this is the same as decoding line by line.
                text = plain[:-1].decode("utf-8", "replace").split("\n")
                for callback in tuple(self._subscribers):
                    self._notify(callback, name, text)

    def _notify(self, callback: Subscriber, name: str, lines: list[str]) -> None:
        try:
            callback(name, lines)
        except Exception as error:
            # Raised into the pipe's callback it would close the pipe: the service's
            # output would stop. Drop the subscriber instead, and say so.
            with contextlib.suppress(ValueError):
                self._subscribers.remove(callback)
            self.system(None, f"internal error in a log subscriber, dropped: {error!r}", "error")

    # -- unfinished lines --------------------------------------------------------------

    def _arm_timer(self, key: tuple[str, Stream], delay: float) -> None:
        asyncio = sys.modules.get("asyncio")
        try:
            # No loop yet, as in the fast start's thread: none can run without asyncio,
            # importing it here would bring ssl along (runtime/lean.py), and the main
            # thread may be importing it (AttributeError: a partial module).
            loop = asyncio.get_running_loop()  # type: ignore[union-attr]
        except (AttributeError, RuntimeError):
            return  # the line waits for its newline or end_stream
        self._timers[key] = loop.call_later(delay, self._partial_due, key)

    def _partial_due(self, key: tuple[str, Stream]) -> None:
        del self._timers[key]
        if key not in self._pending:
            return
        waited = time.monotonic() - self._since[key]
        if waited < self._partial_delay:
            # This line began after the timer was set: give it its own full wait.
            self._arm_timer(key, self._partial_delay - waited)
        else:
            self._flush_partial(key)

    def _flush_partial(self, key: tuple[str, Stream]) -> None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._since.pop(key, None)
        pending = self._pending.pop(key, None)
        if pending:
            self._emit(key[0], [bytes(pending)])

    # -- devstack's own messages -------------------------------------------------------

    def system(self, name: str | None, message: str, level: logfmt.Level = "info") -> None:
        """devstack's own message, about service `name` or (None) the whole stack."""
        self._terminal.write(self._style.system(name, message, level, self._clock()))

    def _log_failed(self, path: Path, error: OSError) -> None:
        self.system(
            None,
            f"cannot write {path}: {error.strerror or error}; trying again every"
            f" {RETRY_AFTER:g}s, counting what is not logged",
            "warn",
        )

    def _log_resumed(self, path: Path, lines: int, size: int) -> None:
        self.system(None, f"logging to {path} again; {lines} lines ({size} bytes) were lost")

    def close(self) -> None:
        """Show every unfinished line and close the log files."""
        for key in list(self._pending):
            self._flush_partial(key)
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._logs.close_all()


class _Terminal:
    """devstack's stdout: whole writes, blocking if it is slow, dropped if it is gone."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.gone = False
        with contextlib.suppress(OSError, ValueError):
            stream.flush()  # what was written before goes first
        try:
            self._fd: int | None = stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation, AttributeError):
            self._fd = None

    def write(self, data: bytes) -> None:
        if self.gone:
            return
        try:
            if self._fd is None:
                self._stream.write(data)
                self._stream.flush()
            else:
                self._write_all(self._fd, data)
        except BlockingIOError:
            raise  # only from a non-blocking stream without a file descriptor: a bug
        except (OSError, ValueError):
            # EPIPE (reader gone), EIO (terminal hung up), a closed file: nobody can see
            # it any more. The services and their log files carry on.
            self.gone = True

    @staticmethod
    def _write_all(fd: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                # stdout shared with something that made it non-blocking: wait, then go on.
                poller = select.poll()
                poller.register(fd, select.POLLOUT)
                poller.poll()


class _LogFiles:
    """`<dir>/<service>.log`, appended to, rotated once to `.log.1` past `limit` bytes.

    Files are opened relative to the directory's descriptor, so a repo renamed while
    `up` runs keeps its logs (and its old path is never created again), with
    O_NOFOLLOW and mode 0600 (issue 11 §4). A failed write (a full disk) is counted,
    not retried line by line: the first write RETRY_AFTER seconds later tries again,
    and once one works, the log and the terminal say how much was lost.
    """

    def __init__(
        self,
        directory: Path | None,
        limit: int,
        failed: Callable[[Path, OSError], None],
        resumed: Callable[[Path, int, int], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directory = directory
        self.enabled = directory is not None
        self._limit = limit
        self._failed = failed
        self._resumed = resumed
        self._clock = clock
        self._dir_fd: int | None = None
        self._files: dict[str, tuple[int, int]] = {}  # name -> (fd, size)
        self._retry_at: dict[str, float] = {}  # failing logs: when to try again
        self._lost: dict[str, tuple[int, int]] = {}  # name -> (lines, bytes) not written
        if directory is not None:
            # Now, once: the repo may be renamed before the first line (issue 11 §2).
            with contextlib.suppress(OSError):
                self._directory()

    def write(self, name: str, data: bytes) -> None:
        if self.directory is None:
            return
        retry_at = self._retry_at.get(name)
        if retry_at is not None and self._clock() < retry_at:
            self._count_lost(name, data)
            return
        try:
            if retry_at is not None:
                self._write(name, self._lost_note(name))
            self._write(name, data)
        except OSError as error:
            self.close(name)
            if self._dir_fd is not None and not self._files:
                os.close(self._dir_fd)  # found again by its path at the next try
                self._dir_fd = None
            self._retry_at[name] = self._clock() + RETRY_AFTER
            self._count_lost(name, data)
            if retry_at is None:
                self._failed(logfiles.log_file(self.directory, name), error)
            return
        if retry_at is not None:
            del self._retry_at[name]
            lines, size = self._lost.pop(name, (0, 0))
            self._resumed(logfiles.log_file(self.directory, name), lines, size)

    def _write(self, name: str, data: bytes) -> None:
        fd, size = self._files.get(name) or self._open(name)
        if size and size + len(data) > self._limit:
            del self._files[name]
            os.close(fd)
            directory = self._directory()
            log = logfiles.log_name(name)
            rotated = logfiles.rotated_name(log)
            os.replace(log, rotated, src_dir_fd=directory, dst_dir_fd=directory)
            fd, size = self._open(name)
        _write_file(fd, data)
        self._files[name] = (fd, size + len(data))

    def _count_lost(self, name: str, data: bytes) -> None:
        lines, size = self._lost.get(name, (0, 0))
        self._lost[name] = (lines + data.count(b"\n"), size + len(data))

    def _lost_note(self, name: str) -> bytes:
        lines, size = self._lost.get(name, (0, 0))
        return f"----- {lines} lines ({size} bytes) not logged: writing failed -----\n".encode()

    def _directory(self) -> int:
        if self._dir_fd is None:
            assert self.directory is not None
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
            try:
                self._dir_fd = os.open(self.directory, flags)
            except FileNotFoundError:
                # Not its parents: were the repo moved, they would be made again at the
                # old path. `up` has made .devstack already.
                self.directory.mkdir(mode=0o700, exist_ok=True)
                self._dir_fd = os.open(self.directory, flags)
            info = os.fstat(self._dir_fd)
            if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(self._dir_fd, 0o700)
        return self._dir_fd

    def _open(self, name: str) -> tuple[int, int]:
        self._files.pop(name, None)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(logfiles.log_name(name), flags, 0o600, dir_fd=self._directory())
        info = os.fstat(fd)
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, 0o600)  # written by an older devstack, 0644
        self._files[name] = (fd, info.st_size)
        return self._files[name]

    def close(self, name: str) -> None:
        entry = self._files.pop(name, None)
        if entry is not None:
            with contextlib.suppress(OSError):
                os.close(entry[0])

    def close_all(self) -> None:
        for name in list(self._files):
            self.close(name)
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None


def _write_file(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
