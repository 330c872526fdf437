"""One service's process: spawn it in its own session, stream its output, stop it.

A service runs in a session (and process group) of its own, so a signal reaches
everything it started in that group and Ctrl+C at the terminal reaches only
devstack, which decides. Its output goes to `Output.feed` straight from the
pipe callbacks, in the chunks the kernel hands over (no reader tasks, no per-line
work here); `tty: true` runs it under a pseudo-terminal instead of pipes, which is
its session's controlling terminal (as `script` and tmux do): a ^C typed at it
(`devstack ui`) is SIGINT to its foreground group, not a byte.

Stopping escalates and says so: the stop signal to the group and to any
descendant that escaped it (double fork, setsid: found by the run's environment
markers and by a snapshot of the process tree), a wait bounded by the timeout,
then SIGKILL for all of them. `stop` returns only once every one is gone, so a
restarted service never finds its own port still held by the old instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import subprocess
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from devstack.runtime import membership, platform, reaper

if TYPE_CHECKING:
    import psutil

    from devstack.runtime.firstwave import Child
    from devstack.runtime.output import Output

Stream = Literal["out", "err"]
# After SIGKILL a process is gone at once unless stuck in the kernel (a dead NFS mount).
KILL_WAIT = 5.0
# The last lines are normally in the pipe when the process exits; let them through
# before anyone hears that it ended. Bounded: an escaped grandchild may hold the pipe.
DRAIN_GRACE = 0.5
PTY_SIZE = (50, 200)  # rows, columns a `tty: true` service sees
# How long a stop waits for the main process to go before it reads the whole process
# table for the escaped: most services end within milliseconds of the signal, and a
# restart then needs no scan at all.
PROMPT_EXIT = 0.05


class ServiceProcess:
    """A running (or ended) service process and everything it started."""

    def __init__(self, name: str, run_id: str | None) -> None:
        self.name = name
        self.pid = 0  # known once started
        self._run_id = run_id
        loop = asyncio.get_running_loop()
        self._exited: asyncio.Future[int] = loop.create_future()
        self._drained = asyncio.Event()
        self._transports: list[asyncio.BaseTransport] = []
        self._family: set[psutil.Process] = set()  # descendants and escaped ones seen so far
        self._stopping: asyncio.Task[int] | None = None
        self._killed = False
        self._adopted = False  # spawned before the loop (firstwave), not by asyncio
        self._terminal: asyncio.ReadTransport | None = None  # the pty's master (tty: true)

    @classmethod
    async def spawn(
        cls,
        *,
        name: str,
        argv: Sequence[str],
        cwd: Path | str,
        env: Mapping[str, str],
        tty: bool,
        output: Output,
    ) -> ServiceProcess:
        """Start `argv`; raises OSError when it cannot be started (no such command),
        ValueError when no process could receive its arguments or environment."""
        check_spawnable(argv, env)
        process = cls(name, env.get(reaper.RUN_ID_VAR))
        if tty:
            await process._start_on_pty(argv, cwd, env, output)
            return process
        loop = asyncio.get_running_loop()
        transport, _ = await loop.subprocess_exec(
            lambda: _PipeProtocol(process, output),
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        process._transports.append(transport)
        return process

    @classmethod
    async def adopt(
        cls, *, name: str, child: Child, run_id: str | None, output: Output
    ) -> ServiceProcess:
        """Take over a child spawned before the loop ran (devstack.runtime.firstwave): its exit
        is learnt through a pidfd (by pid where there are none), its pipes are read
        from here on, and whatever it printed meanwhile is still in them, so no line
        is lost."""
        process = cls(name, run_id)
        process.pid = child.pid
        reaper.note_live(child.pid)
        if not child.announced:
            output.started(name, child.pid)
        output.resume(name)
        loop = asyncio.get_running_loop()
        process._watch_exit(loop)
        open_streams = {"out", "err"}

        def closed(stream: Stream) -> None:
            output.end_stream(name, stream)
            open_streams.discard(stream)
            if not open_streams:
                process._drained.set()

        for fd, stream in ((child.out, "out"), (child.err, "err")):
            transport, _ = await loop.connect_read_pipe(
                lambda stream=stream: _StreamProtocol(name, stream, output, closed),  # type: ignore[misc]
                os.fdopen(fd, "rb", buffering=0),
            )
            process._transports.append(transport)
        return process

    def _watch_exit(self, loop: asyncio.AbstractEventLoop) -> None:
        """Learn of an adopted child's exit: a pidfd turns readable (Linux), else a
        thread waits for its pid, as asyncio watches the children it spawns on the
        portable platform (macOS, DEVSTACK_PORTABLE=1)."""
        self._adopted = True
        pidfd = _pidfd(self.pid)
        if pidfd is None:
            import threading

            waiter = threading.Thread(
                target=_wait_for_exit, args=(self.pid, loop, self._process_exited), daemon=True
            )
            waiter.start()
            return

        def exited() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            self._process_exited(_reap(self.pid))

        loop.add_reader(pidfd, exited)

    async def _start_on_pty(
        self, argv: Sequence[str], cwd: Path | str, env: Mapping[str, str], output: Output
    ) -> None:
        import pty

        loop = asyncio.get_running_loop()
        master, slave = pty.openpty()
        try:
            _prepare_pty(slave)
            transport, _ = await loop.subprocess_exec(
                lambda: _PipeProtocol(self, output, streams=()),
                *argv,
                cwd=cwd,
                env=dict(env),
                # Its terminal is its stdin too: what `devstack ui` types reaches it.
                stdin=slave,
                stdout=slave,
                stderr=slave,
                start_new_session=True,
                preexec_fn=_take_terminal(),
            )
        except BaseException as error:
            os.close(master)
            if isinstance(error, subprocess.SubprocessError):  # preexec_fn failed
                raise OSError(errno.ENOTTY, f"its terminal: {error}") from None
            raise
        finally:
            os.close(slave)  # else the master never sees the end of the output
        self._transports.append(transport)
        reader, _ = await loop.connect_read_pipe(
            lambda: _PtyProtocol(self.name, output, self._drained),
            os.fdopen(master, "rb", buffering=0),
        )
        self._transports.append(reader)
        self._terminal = reader

    def write_input(self, data: bytes) -> None:
        """Type `data` at a `tty: true` service's terminal (`devstack ui`, issue 17).

        Never blocks the loop: a service that does not read its terminal fills the
        pty's buffer, and the rest is refused with an OSError saying so."""
        terminal = self._terminal
        if terminal is None or terminal.is_closing():
            raise OSError(errno.EPIPE, "it has no terminal open (not tty: true, or it ended)")
        fd = terminal.get_extra_info("pipe").fileno()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(fd, view) :]
            except BlockingIOError:
                raise OSError(errno.EAGAIN, "it is not reading its terminal") from None

    # -- waiting ---------------------------------------------------------------------

    @property
    def returncode(self) -> int | None:
        return self._exited.result() if self._exited.done() else None

    async def wait(self) -> int:
        """The exit status once the main process has exited (negative: killed by -N)."""
        code = await asyncio.shield(self._exited)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), DRAIN_GRACE)
        return code

    # -- stopping --------------------------------------------------------------------

    async def stop(self, sig: int, timeout: float, say: Callable[[str], None]) -> int:
        """Stop the process, its group and the escaped: `sig`, then SIGKILL after
        `timeout`; returns the exit status once all of them are gone. Calling it
        again (or concurrently) waits for the same stop."""
        if self._stopping is None:
            self._stopping = asyncio.get_running_loop().create_task(self._stop(sig, timeout, say))
        return await asyncio.shield(self._stopping)

    def kill(self) -> None:
        """SIGKILL the group and every descendant seen so far, now (a second Ctrl+C).

        A `stop` in progress (or the next one) then finds and kills any other."""
        self._killed = True
        _signal_group(self.pid, signal.SIGKILL)
        reaper.send(self._family | set(_descendants(self.pid)), signal.SIGKILL)

    async def _stop(self, sig: int, timeout: float, say: Callable[[str], None]) -> int:
        left = await self._end_all(sig, timeout)
        if left is not None:
            who = "" if left == "main" else f"{left} "
            say(f"{who}did not stop within {timeout:g}s, sending SIGKILL")
            self.kill()
            left = await self._end_all(signal.SIGKILL, KILL_WAIT)
            if left == "main":
                say(f"still running {KILL_WAIT:g}s after SIGKILL, giving up on it")
            elif left is not None:
                say(f"{left}: still running {KILL_WAIT:g}s after SIGKILL, giving up")
        await self._close()
        return self.returncode if self.returncode is not None else -signal.SIGKILL

    async def _end_all(self, sig: int, timeout: float) -> str | None:
        """Send `sig` to the group and to the escaped, and wait until the main process
        and all of them are gone: None then; else who is left ("main" or described).

        The group gets `sig` first. Most services are gone within milliseconds; then,
        as a subreaper, devstack knows without reading the whole process table that
        nothing escaped (`_nothing_left`), and a restart waits for no scan. Otherwise
        the table is read to find the escaped, who need the signal too.
        Only once the main process has exited are new members looked for again: a
        service may start helpers to shut down cleanly, and those get their chance.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        _signal_group(self.pid, signal.SIGKILL if self._killed else sig)
        await asyncio.wait([self._exited], timeout=min(PROMPT_EXIT, timeout))
        first = True
        known: set[psutil.Process] = set()  # found by an earlier pass, and waited for
        while True:
            if self._exited.done() and self._nothing_left():
                return None
            members = self._family_in(await _shared_scan().table())
            family = reaper.select_live(members)
            self._family.update(family)
            fresh = [proc for proc in family if proc not in known]
            if not fresh and self._exited.done():
                self._reap_adopted_members()
                return None
            # The first scan began after the group signal: its members have it (a
            # second SIGINT is "quit now" to npm and many dev servers).
            reached = {entry.pid for entry in members if entry.pgid == self.pid} if first else ()
            reaper.send(
                [proc for proc in fresh if proc.pid not in reached],
                signal.SIGKILL if self._killed else sig,
            )
            first = False
            known.update(fresh)
            alive = await _gone_by(deadline - loop.time(), family, self._exited)
            if not self._exited.done():
                return "main"
            if alive:
                return reaper.describe(alive)

    def _family_in(self, table: list[reaper.Entry]) -> list[reaper.Entry]:
        """Everything this service started that is in `table`: its descendants, its
        process group, processes carrying its markers (the escaped), and theirs."""
        selector = reaper.Selector(
            run_ids=frozenset([self._run_id] if self._run_id else []),
            service=self.name,
            groups=frozenset([self.pid]),
            # Another instance of the service (never at the same time, but be sure).
            exclude=frozenset(
                entry.pid for entry in table if entry.pgid in reaper.live_pids() - {self.pid}
            ),
        )
        members = {entry.pid for entry in table if selector.matches(entry)}
        # Seen below this service by the census: an orphan that shed marker and group.
        members |= membership.CENSUS.of_service(self.name) & {entry.pid for entry in table}
        members |= reaper.descendants(table, members | {self.pid})
        members.discard(self.pid)
        return [entry for entry in table if entry.pid in members]

    def _nothing_left(self) -> bool:
        """True if nothing the service started can still run, known without reading
        the whole process table; False if that takes a scan.

        It can be known only as a subreaper: once the main process is gone, whatever
        it left behind is either still in its group or hangs below devstack, the top
        of each such tree one of devstack's own children.
        """
        if not reaper.is_subreaper() or not self._reap_adopted_members():
            return False
        if not reaper.group_is_empty(self.pid):
            return False
        # The group is gone, so whatever it orphaned has been adopted by now: look again.
        children = reaper.own_children()
        return children is not None and all(entry.zombie for entry in self._family_in(children))

    def _reap_adopted_members(self) -> bool:
        """Reap the members of the group that exited as devstack's adopted children: a
        zombie still counts as a member of the group. False if children are unknown."""
        children = reaper.own_children()
        if children is None:
            return False
        reaper.reap_zombies_of_group(children, self.pid)
        return True

    async def _close(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), DRAIN_GRACE)
        # The last resort of a stop: asyncio's transport.close() SIGKILLs the main
        # process if it is still running (one stuck in the kernel is killed when it
        # comes back). tests/unit/test_process_last_resort.py pins that.
        for transport in self._transports:
            transport.close()
        if self._adopted and not self._exited.done():
            _signal_group(self.pid, signal.SIGKILL)  # what transport.close() does for the rest

    # -- called by the protocols -----------------------------------------------------

    def _process_exited(self, code: int) -> None:
        reaper.forget_live(self.pid)
        if not self._exited.done():
            self._exited.set_result(code)


def describe_spawn_error(error: OSError | ValueError, cwd: Path | str) -> str:
    """Why a spawn failed, in words: which path, and whether it was the cwd."""
    if not isinstance(error, OSError):
        return str(error)
    reason = error.strerror or str(error)
    path = error.filename
    if path is not None and os.fspath(path) == os.fspath(cwd):
        if not os.path.exists(cwd):
            # Typically the repo was renamed while `up` ran (issue 11 §2).
            return (
                f"its cwd {os.fspath(cwd)} does not exist (moved or deleted since devstack up"
                " started? then stop it and run devstack up where the repo is now)"
            )
        return f"its cwd {os.fspath(cwd)}: {reason}"
    return f"{os.fspath(path)}: {reason}" if path is not None else reason


def _pidfd(pid: int) -> int | None:
    """A pidfd for `pid` on Linux's platform; None on the portable one, or a kernel
    before 5.3 (ENOSYS) or a seccomp filter that refuses it."""
    if not platform.current().procfs or not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _reap(pid: int) -> int:
    """Reap `pid`, exited; its exit status (negative: killed by -N)."""
    try:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    except ChildProcessError:  # reaped elsewhere: its status is unknown
        return -signal.SIGKILL


def _wait_for_exit(
    pid: int, loop: asyncio.AbstractEventLoop, exited: Callable[[int], None]
) -> None:
    """A thread's work (asyncio's ThreadedChildWatcher's): wait for `pid` and tell the loop."""
    code = _reap(pid)
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
        loop.call_soon_threadsafe(exited, code)


def check_spawnable(argv: Sequence[str], env: Mapping[str, str]) -> None:
    """ValueError naming the argument or variable that no process can receive: a NUL
    byte ends a C string, and a lone surrogate has no bytes at all. The value itself
    is not shown: it may be a secret."""
    problems = [
        f"argument {index} of the command {why}"
        for index, arg in enumerate(argv)
        if (why := _unpassable(arg))
    ]
    for key, value in env.items():
        if not key or "=" in key:
            problems.append(f"the name of variable {key!r} is empty or holds '='")
        elif why := _unpassable(key):
            problems.append(f"the name of variable {key!r} {why}")
        elif why := _unpassable(value):
            problems.append(f"the value of {key} {why}")
    if problems:
        raise ValueError("; ".join(problems) + " (fix it where it is set: `devstack env`)")


def _unpassable(text: str) -> str:
    """Why `text` cannot be passed to a process, or "" if it can."""
    if "\0" in text:
        return f"holds a NUL byte (at character {text.index(chr(0)) + 1})"
    try:
        os.fsencode(text)
    except UnicodeEncodeError as error:
        return (
            f"holds a character with no encoding (a lone surrogate at character {error.start + 1})"
        )
    return ""


class _PipeProtocol(asyncio.SubprocessProtocol):
    """Feeds stdout and stderr to Output as they arrive; notes the exit."""

    def __init__(
        self, process: ServiceProcess, output: Output, streams: tuple[int, ...] = (1, 2)
    ) -> None:
        self._process = process
        self._name = process.name
        self._output = output
        self._open = set(streams)
        self._transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self._transport = transport
        self._process.pid = transport.get_pid()
        reaper.note_live(self._process.pid)
        # Here, before the first output arrives, so the log's start separator comes first.
        self._output.started(self._name, self._process.pid)

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        self._output.feed(self._name, _STREAMS[fd], data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._output.end_stream(self._name, _STREAMS[fd])
        self._open.discard(fd)
        if not self._open:
            self._process._drained.set()

    def process_exited(self) -> None:
        assert self._transport is not None
        code = self._transport.get_returncode()
        assert code is not None
        self._process._process_exited(code)

    def connection_lost(self, exc: Exception | None) -> None:
        # Exited and every pipe closed: nothing more will come through it.
        if self._transport is not None:
            self._transport.close()


_STREAMS: dict[int, Stream] = {1: "out", 2: "err"}


class _StreamProtocol(asyncio.Protocol):
    """Feeds one stream of an adopted process, read from its pipe."""

    def __init__(
        self, name: str, stream: Stream, output: Output, closed: Callable[[Stream], None]
    ) -> None:
        self._name = name
        self._stream: Stream = stream
        self._output = output
        self._closed = closed

    def data_received(self, data: bytes) -> None:
        self._output.feed(self._name, self._stream, data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed(self._stream)


class _PtyProtocol(asyncio.Protocol):
    """Feeds what a `tty: true` service writes to its terminal (stdout and stderr)."""

    def __init__(self, name: str, output: Output, drained: asyncio.Event) -> None:
        self._name = name
        self._output = output
        self._drained = drained

    def data_received(self, data: bytes) -> None:
        self._output.feed(self._name, "out", data)

    def connection_lost(self, exc: Exception | None) -> None:
        # EIO once every holder of the terminal has closed it: the pty's way of EOF.
        self._output.end_stream(self._name, "out")
        self._drained.set()


def _prepare_pty(slave: int) -> None:
    """Plain "\\n" line ends (no "\\r\\n" from the terminal driver), a usable size, and
    no flush at ^C: a terminal drops the output not yet shown when it sends SIGINT,
    and devstack loses no line of a service's output (NOFLSH keeps them)."""
    import fcntl
    import struct
    import termios

    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.ONLCR  # output flags
    attrs[3] |= termios.NOFLSH  # local flags
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", *PTY_SIZE, 0, 0))


def _take_terminal() -> Callable[[], object]:
    """What the child runs between fork and exec, after setsid (start_new_session):
    TIOCSCTTY on its stdin, the pty, which so becomes the controlling terminal of its
    session, with the service's group in the foreground. Then the terminal's line
    discipline turns a typed ^C into SIGINT (^\\ into SIGQUIT) for that group, as in
    any terminal, and the service can open its own terminal (/dev/tty). A ^Z stops
    nothing: the group's parent, devstack, is outside the session, so the group is
    orphaned and the kernel drops the terminal's stop signals (no shell could `fg` it).

    preexec_fn is subprocess's only way into that moment. It gets a C function with
    its arguments bound: none of devstack's Python runs in the forked child (the
    hazard of preexec_fn in a threaded process is code that takes a lock another
    thread held at the fork)."""
    import fcntl
    import functools
    import termios

    return functools.partial(fcntl.ioctl, 0, termios.TIOCSCTTY, 0)


def _signal_group(pgid: int, sig: int) -> None:
    # The group outlives its leader while members remain; ESRCH means it is empty.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class _SharedScan:
    """One scan of the process table for every stop that asks at the same time.

    With many services stopping at once, each would otherwise read every process's
    environment itself. A caller always gets a scan begun after it asked, so the
    scan sees what its own signals did.
    """

    def __init__(self) -> None:
        self._waiting: asyncio.Future[list[reaper.Entry]] | None = None
        self._task: asyncio.Task[None] | None = None

    async def table(self) -> list[reaper.Entry]:
        loop = asyncio.get_running_loop()
        if self._waiting is None:
            self._waiting = loop.create_future()
        if self._task is None:
            self._task = loop.create_task(self._scan())
        return await asyncio.shield(self._waiting)

    async def _scan(self) -> None:
        try:
            while self._waiting is not None:
                future, self._waiting = self._waiting, None
                try:
                    future.set_result(await asyncio.to_thread(reaper.process_table))
                except Exception as error:
                    future.set_exception(error)
        finally:
            self._task = None


_scans: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedScan] = (
    weakref.WeakKeyDictionary()
)


def _shared_scan() -> _SharedScan:
    return _scans.setdefault(asyncio.get_running_loop(), _SharedScan())


def _descendants(pid: int) -> list[psutil.Process]:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


async def _gone_by(
    timeout: float, procs: Sequence[psutil.Process], main: asyncio.Future[int]
) -> list[psutil.Process]:
    """Wait up to `timeout` for the main process and `procs` to exit; those still running.

    Each exit is an event where the OS has one (pidfds on Linux, kqueue on macOS),
    without a thread (`platform.await_gone`).
    """
    others = asyncio.ensure_future(platform.current().await_gone(procs, max(timeout, 0.0)))
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(main), max(timeout, 0.0))
        return await others
    finally:
        others.cancel()  # cancelled meanwhile: no wait is left behind (done: a no-op)
