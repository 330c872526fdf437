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
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

from devstack import logfiles, logfmt

if TYPE_CHECKING:
    import asyncio  # imported when a timer is armed: the fast start shows lines before it

Stream = Literal["out", "err"]
Subscriber = Callable[[str, list[str]], None]

PARTIAL_DELAY = 0.15  # seconds an unfinished line waits for its newline before it is shown
LOG_LIMIT = 5 * 1024 * 1024  # bytes per log file before it becomes <service>.log.1


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
        self._logs = _LogFiles(log_dir, log_limit, self._log_failed)
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
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (yet): the line waits for its newline or end_stream
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
        self.system(None, f"cannot write {path}: {error.strerror or error}; not logging it", "warn")

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
    """`<dir>/<service>.log`, appended to, rotated once to `.log.1` past `limit` bytes."""

    def __init__(
        self, directory: Path | None, limit: int, failed: Callable[[Path, OSError], None]
    ) -> None:
        self.directory = directory
        self.enabled = directory is not None
        self._limit = limit
        self._failed = failed
        self._files: dict[str, tuple[int, int]] = {}  # name -> (fd, size)
        self._broken: set[str] = set()

    def write(self, name: str, data: bytes) -> None:
        if self.directory is None or name in self._broken:
            return
        try:
            # The path only when a file is opened: building one per write was most of
            # the log work of a start with many services (issue 16).
            fd, size = self._files.get(name) or self._open(name, self._path(name))
            if size and size + len(data) > self._limit:
                del self._files[name]
                os.close(fd)
                path = self._path(name)
                os.replace(path, path.with_name(path.name + ".1"))
                fd, size = self._open(name, path)
            _write_file(fd, data)
            self._files[name] = (fd, size + len(data))
        except OSError as error:
            self._broken.add(name)
            self.close(name)
            self._failed(self._path(name), error)

    def _path(self, name: str) -> Path:
        assert self.directory is not None
        return logfiles.log_file(self.directory, name)

    def _open(self, name: str, path: Path) -> tuple[int, int]:
        self._files.pop(name, None)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        try:
            fd = os.open(path, flags, 0o644)
        except FileNotFoundError:
            # The directory only on the first open (or if it was removed meanwhile): with
            # many services, a mkdir and a stat each were a quarter of the log work of a start.
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, flags, 0o644)
        self._files[name] = (fd, os.fstat(fd).st_size)
        return self._files[name]

    def close(self, name: str) -> None:
        entry = self._files.pop(name, None)
        if entry is not None:
            with contextlib.suppress(OSError):
                os.close(entry[0])

    def close_all(self) -> None:
        for name in list(self._files):
            self.close(name)


def _write_file(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
