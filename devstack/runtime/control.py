"""The control channel of a running `devstack up`: its Unix socket, the JSON-lines
protocol spoken on it, the server that answers for the supervisor, and the client
the CLI commands (`ps`, `logs -f`, `restart`, `stop`, `start`, `down`, `env --live`) use.

The socket lives in `<repo>/.devstack/control.sock` (directory 0700, socket 0600);
a repo path too long for AF_UNIX moves it under the user's runtime directory, and
`.devstack/control.path` always records where it really is. On Linux the server
also checks the peer's uid and refuses other users. A socket left behind by a killed
`up` accepts no connection: clients report "no devstack up is running", and the next
`up` replaces it.

One request per connection: `{"v": 1, "op": "ps"}` and a reply line `{"v": 1,
"ok": true, ...}` or `{"v": 1, "ok": false, "error": ..., "problems": [...], "exit": N}`.
`logs-follow` replies, then streams `{"name", "lines", "from"}` records until the
client leaves; `watch` replies with every service's status, then sends them all again
each time one changes (`devstack ui`). `input` types text at a `tty: true` service.
A message that is not JSON, not an object, of another version or longer than
MAX_MESSAGE gets an error reply; the server carries on.

Every wait is bounded (issue 11 §2). A client gets REQUEST_TIMEOUT to send its
request; at most MAX_IDLE connections may wait for theirs (a new one pushes the
oldest out) and MAX_CONNECTIONS be open at all; running out of file descriptors
makes the accept loop pause and say so once, never spin. While an answer takes
long (a restart waiting for a ready probe) or a follow or a watch is quiet, the server sends
`{"alive": true}` every HEARTBEAT seconds, so a client gives up after
CLIENT_TIMEOUT of silence: the `up` is stopped (Ctrl+Z) or stuck, and it says so.
A `logs -f` client that reads slower than the services write gets at most
FOLLOW_BACKLOG characters queued; what does not fit is skipped and counted, and the
client is told `{"skipped": N}` where the lines are missing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import errno
import json
import os
import socket
import stat
import struct
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from devstack.core import logfiles
from devstack.core.errors import (
    EXIT_FAILURE,
    EXIT_USAGE,
    DevstackError,
    Problem,
    unknown_name_error,
)
from devstack.runtime import lean, platform
from devstack.runtime.files import write_atomically

if TYPE_CHECKING:
    from devstack.core.logfmt import Level
    from devstack.core.model import Project
    from devstack.runtime.stackapi import StackAPI

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024
OPS = frozenset({"ps", "restart", "start", "stop", "down", "logs-follow", "env", "watch", "input"})
NEEDS_SERVICES = frozenset({"restart", "start", "stop"})
SOCKET_NAME = "control.sock"
PATH_RECORD = "control.path"
# Characters of live output queued for one `logs -f` client; past it, lines are skipped.
FOLLOW_BACKLOG = 1024 * 1024
REQUEST_TIMEOUT = 5.0  # seconds a connection gets to send its request line
HEARTBEAT = 2.0  # a slow answer or a quiet follow says it is alive this often
CLIENT_TIMEOUT = 10.0  # a client gives up on an `up` silent this long
MAX_IDLE = 16  # connections still to send their request; a new one pushes the oldest out
MAX_CONNECTIONS = 128  # open connections in all (followers, waiting restarts, idle)
ACCEPT_PAUSE = (0.05, 2.0)  # first and longest pause of the accept loop without fds
ALIVE = {"alive": True}
LOG_SEPARATOR_PREFIX = "----- "
MAX_BY = 40


class ProtocolError(Exception):
    """A message that is not a valid request; the error reply carries the reason."""


# -- protocol --------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    op: str
    services: tuple[str, ...] = ()
    tail: int = 0  # logs-follow: lines from each log file before the live ones
    by: str = ""  # restart: the client that asks ("devstack mcp"), said in the reason
    data: str = ""  # input: the text to type


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line: the message with the protocol version, as compact JSON."""
    return json.dumps({"v": PROTOCOL_VERSION, **message}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A protocol line as a JSON object; ProtocolError says what is wrong with it."""
    if len(line) > MAX_MESSAGE:
        raise ProtocolError(f"message longer than {MAX_MESSAGE} bytes")
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as error:
        # ValueError covers JSONDecodeError, bad UTF-8 and a 5,000-digit integer
        # (int's digit limit); RecursionError a 30,000-deep nest of arrays.
        raise ProtocolError(f"not a JSON message: {_shorten(str(error))}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    if message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {message.get('v')!r} is not supported (this devstack speaks"
            f" {PROTOCOL_VERSION}); use the devstack that runs `up`"
        )
    return message


def _shorten(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def parse_request(message: Mapping[str, Any]) -> Request:
    op = message.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; known: {', '.join(sorted(OPS))}")
    services = message.get("services", [])
    if not isinstance(services, list) or not all(isinstance(name, str) for name in services):
        raise ProtocolError("'services' must be a list of service names")
    if op in NEEDS_SERVICES and not services:
        raise ProtocolError(f"{op} needs at least one service name")
    if op in ("env", "input") and len(services) != 1:
        raise ProtocolError(f"{op} needs exactly one service name")
    data = message.get("data", "")
    if not isinstance(data, str) or (op == "input" and not data):
        raise ProtocolError("input needs 'data': the text to type")
    tail = message.get("tail", 0)
    if not isinstance(tail, int) or isinstance(tail, bool) or tail < 0:
        raise ProtocolError("'tail' must be a number of lines, 0 or more")
    by = message.get("by", "")
    if not isinstance(by, str) or len(by) > MAX_BY:
        raise ProtocolError(f"'by' must be a client's name of at most {MAX_BY} characters")
    return Request(op=op, services=tuple(services), tail=tail, by=by, data=data)


def error_reply(problems: Sequence[Problem], exit_status: int = EXIT_USAGE) -> dict[str, Any]:
    return {
        "ok": False,
        "error": "\n".join(problem.render() for problem in problems),
        "problems": [{"message": p.message, "hint": p.hint} for p in problems],
        "exit": exit_status,
    }


def error_from_reply(reply: Mapping[str, Any]) -> DevstackError:
    """The DevstackError an error reply stands for, with its hints."""
    problems = [
        Problem(str(item.get("message", "")), hint=item.get("hint"))
        for item in reply.get("problems") or []
        if isinstance(item, dict)
    ] or [Problem(str(reply.get("error", "the running devstack refused the request")))]
    exit_status = reply.get("exit", EXIT_FAILURE)
    return DevstackError(problems, exit_status if isinstance(exit_status, int) else EXIT_FAILURE)


# -- where the socket is ---------------------------------------------------------------


def fits_af_unix(path: Path) -> bool:
    # The OS's own sun_path: 108 bytes on Linux, 104 on macOS (issue 15).
    return len(os.fsencode(path)) <= platform.current().socket_path_limit


def choose_socket_path(root: Path, environ: Mapping[str, str], uid: int) -> Path:
    """`.devstack/control.sock`, or a short path in the user's runtime dir if too long."""
    preferred = root / ".devstack" / SOCKET_NAME
    if fits_af_unix(preferred):
        return preferred
    name = f"devstack-{lean.sha256(os.fsencode(root)).hexdigest()[:16]}.sock"
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and fits_af_unix(Path(runtime_dir) / name):
        return Path(runtime_dir) / name
    import tempfile  # a rare path; tempfile brings random and more into `up` for good

    return Path(tempfile.gettempdir()) / f"devstack-{uid}" / name


def recorded_socket_path(root: Path) -> Path:
    """Where the running `up` of `root` said its socket is (or would be)."""
    try:
        recorded = (root / ".devstack" / PATH_RECORD).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        recorded = ""
    # Relative: the socket is in .devstack, found there even after the repo was renamed.
    return root / ".devstack" / (recorded or SOCKET_NAME)


def _private_dir(directory: Path, uid: int) -> None:
    """Create `directory` 0700, or check that an existing one is ours and private."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = directory.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != uid:
        raise DevstackError.single(
            f"{directory} is not a directory of yours; the control socket cannot go there",
            hint="remove it, or run devstack from a shorter repo path",
            exit_status=EXIT_FAILURE,
        )
    if info.st_mode & 0o077 and directory.name in (".devstack", f"devstack-{uid}"):
        directory.chmod(0o700)


def _cannot_bind(path: Path, error: OSError) -> DevstackError:
    return DevstackError.single(
        f"cannot make the control socket {path}: {error.strerror or error}",
        hint="remove what is in its place; devstack up then starts",
        exit_status=EXIT_FAILURE,
    )


def _is_live(path: Path, timeout: float = CLIENT_TIMEOUT) -> bool:
    """Whether something listens on the socket at `path`: it accepts connections, or
    its backlog stays full for `timeout` (an `up` stopped with Ctrl+Z still holds it)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        _connect_timeout(probe, timeout)
        try:
            probe.connect(os.fspath(path))
        except OSError as error:
            return error.errno in (errno.EAGAIN, errno.ETIMEDOUT)
    return True


def _connect_timeout(sock: socket.socket, timeout: float) -> None:
    """A full backlog (an `up` stopped with Ctrl+Z, or flooded) makes connect wait: in
    blocking mode for up to SO_SNDTIMEO (Linux), where a Python timeout would make it
    fail at once with EAGAIN."""
    seconds = int(timeout)
    sock.setsockopt(
        socket.SOL_SOCKET,
        socket.SO_SNDTIMEO,
        struct.pack("ll", seconds, int((timeout - seconds) * 1_000_000)),
    )


def bind_socket(root: Path, environ: Mapping[str, str], uid: int) -> socket.socket:
    """A listening socket for `root`, replacing a stale one; its path recorded."""
    from devstack.runtime.runstate import prepare_state_dir

    path = choose_socket_path(root, environ, uid)
    state_dir = prepare_state_dir(root)
    if path.parent != state_dir:
        _private_dir(path.parent, uid)
    if path.exists() or path.is_symlink():
        if _is_live(path):
            raise DevstackError.single(
                f"another devstack up already answers on {path}",
                hint="`devstack ps` shows it; `devstack down` stops it",
                exit_status=EXIT_FAILURE,
            )
        try:
            path.unlink()  # left by an `up` that was killed: nobody listens on it
        except OSError as error:
            raise _cannot_bind(path, error) from None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            listener.bind(os.fspath(path))
        except OSError as error:
            raise _cannot_bind(path, error) from None
        path.chmod(0o600)  # the 0700 directory already keeps others out meanwhile
        listener.listen(128)
        listener.setblocking(False)
        recorded = path.name if path.parent == state_dir else str(path)
        write_atomically(state_dir / PATH_RECORD, f"{recorded}\n", 0o600)
    except BaseException:
        listener.close()
        raise
    return listener


# -- the server ------------------------------------------------------------------------


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED, LOCAL_PEERCRED, or the
    owner of the socket's private directory: `platform`); None if unknown."""
    return platform.current().peer_uid(sock)


async def serve(
    supervisor: StackAPI, *, project: Project, listener: socket.socket | None = None
) -> None:
    """Answer control requests for `supervisor` on `listener` (bound here if not given)
    until cancelled; removes the socket then."""
    if listener is None:
        listener = bind_socket(project.root, os.environ, os.getuid())
    path = Path(listener.getsockname())
    try:
        identity = path.stat().st_ino
    except OSError:  # the repo was renamed since the socket was bound (by the fast start)
        identity = -1  # nothing of ours is at that path to remove at the end
    server = ControlServer(supervisor, root=project.root, own_uid=os.getuid())
    try:
        await server.accept_forever(listener)
    finally:
        listener.close()
        await server.close()
        _remove_socket(project.root, path, identity)


def _remove_socket(root: Path, path: Path, identity: int) -> None:
    """Remove our socket and its record, unless a newer `up` has replaced them."""
    with contextlib.suppress(OSError):
        if path.stat().st_ino == identity:
            path.unlink()
    record = root / ".devstack" / PATH_RECORD
    with contextlib.suppress(OSError):
        if root / ".devstack" / record.read_text(encoding="utf-8").strip() == path:
            record.unlink()


class ControlServer:
    """Answers one request per connection on behalf of a supervisor."""

    def __init__(self, supervisor: StackAPI, *, root: Path, own_uid: int) -> None:
        self.supervisor = supervisor
        self.root = root
        self.own_uid = own_uid
        self._handlers: set[asyncio.Task[Any]] = set()
        # Connections still to send their request, oldest first: the first to go.
        self._idle: dict[asyncio.Task[Any], None] = {}

    async def accept_forever(self, listener: socket.socket) -> None:
        """Accept connections until cancelled, each answered by its own task.

        Out of file descriptors (EMFILE, ENFILE), the loop drops the idle connections,
        says so once and pauses, longer each time, until an accept works again: never
        a loop of tracebacks, and Ctrl+C (the supervisor's signal handler) still works.
        """
        loop = asyncio.get_running_loop()
        pause = ACCEPT_PAUSE[0]
        failing = False
        while True:
            try:
                connection, _ = await loop.sock_accept(listener)
            except (InterruptedError, ConnectionAbortedError):
                continue
            except OSError as error:
                if not failing:
                    self._say(
                        f"control socket: cannot accept connections ({_describe(error)});"
                        " closing idle ones, trying again",
                        "warn",
                    )
                failing = True
                self._evict_idle(len(self._idle))
                await asyncio.sleep(pause)
                pause = min(pause * 2, ACCEPT_PAUSE[1])
                continue
            if failing:
                self._say("control socket: accepting connections again")
            failing, pause = False, ACCEPT_PAUSE[0]
            self._admit(connection)

    def _admit(self, connection: socket.socket) -> None:
        if len(self._handlers) >= MAX_CONNECTIONS and not self._idle:
            with contextlib.suppress(OSError):
                connection.setblocking(False)
                connection.send(encode(_refusal(f"more than {MAX_CONNECTIONS} connections open")))
            connection.close()
            return
        if len(self._idle) >= MAX_IDLE or len(self._handlers) >= MAX_CONNECTIONS:
            self._evict_idle(1)
        started: list[bool] = []
        task = asyncio.get_running_loop().create_task(self._serve_connection(connection, started))
        self._handlers.add(task)
        self._idle[task] = None

        def forget(task: asyncio.Task[Any]) -> None:
            self._handlers.discard(task)
            self._idle.pop(task, None)
            if not started:  # cancelled (pushed out) before it ran: nobody else closes it
                connection.close()

        task.add_done_callback(forget)

    def _evict_idle(self, count: int) -> None:
        for task in list(self._idle)[:count]:
            del self._idle[task]
            task.cancel()

    async def _serve_connection(self, connection: socket.socket, started: list[bool]) -> None:
        started.append(True)
        try:
            reader, writer = await asyncio.open_unix_connection(sock=connection, limit=MAX_MESSAGE)
        except BaseException:
            connection.close()
            raise
        await self.handle(reader, writer)

    async def close(self) -> None:
        """End every open connection (a `logs -f` follower, a waiting restart)."""
        for task in list(self._handlers):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._answer(reader, writer)
        except (ConnectionError, BrokenPipeError):
            pass  # the client left: whatever it asked for carries on or stops, harmlessly
        except Exception as error:  # a bug: one line in the terminal, the server goes on
            self._say(f"internal error answering a control request: {_shorten(repr(error))}")
        finally:
            self._handlers.discard(task)
            self._idle.pop(task, None)
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = peer_uid(writer.get_extra_info("socket"))
        if uid is not None and uid != self.own_uid:
            await _send(
                writer, _refusal(f"uid {uid} may not control the devstack of uid {self.own_uid}")
            )
            return
        try:
            line = await asyncio.wait_for(reader.readline(), REQUEST_TIMEOUT)
        except ValueError:  # longer than the stream's limit
            await _send(writer, _refusal(f"message longer than {MAX_MESSAGE} bytes"))
            return
        except TimeoutError:
            await _send(writer, _refusal(f"no request within {REQUEST_TIMEOUT:g}s"))
            return
        task = asyncio.current_task()
        self._idle.pop(task, None)  # type: ignore[arg-type]
        if not line:
            return
        try:
            request = parse_request(decode(line))
        except ProtocolError as error:
            await _send(writer, _refusal(str(error)))
            return
        await self._dispatch(request, reader, writer)

    async def _dispatch(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            if request.op == "logs-follow":
                await self._follow(request, reader, writer)
                return
            if request.op == "watch":
                await self._watch(reader, writer)
                return
            reply = await self._reply_with_heartbeats(request, writer)
        except DevstackError as error:
            reply = error_reply(error.problems, error.exit_status)
        except Exception as error:  # a bug: say so on both ends, keep serving the others
            message = f"internal error during {request.op}: {error!r}"
            self.supervisor.say(message, "error")
            reply = error_reply([Problem(message)], EXIT_FAILURE)
        await _send(writer, reply)

    async def _reply_with_heartbeats(
        self, request: Request, writer: asyncio.StreamWriter
    ) -> dict[str, Any]:
        """The reply to `request`; meanwhile `{"alive": true}` every HEARTBEAT seconds, so
        the client can tell a restart that waits for its probe from an `up` that hangs."""
        work = asyncio.ensure_future(self._reply(request))
        try:
            while not (await asyncio.wait({work}, timeout=HEARTBEAT))[0]:
                await _send(writer, ALIVE)
            return work.result()
        finally:
            work.cancel()  # the client left: the action itself has been started already

    async def _reply(self, request: Request) -> dict[str, Any]:
        supervisor = self.supervisor
        names = list(request.services)
        if request.op == "ps":
            return {"ok": True, "pid": os.getpid(), "root": str(self.root), **self._statuses()}
        if request.op == "restart":
            await supervisor.restart(names, f"asked by `{request.by or 'devstack restart'}`")
        elif request.op == "start":
            await supervisor.start(names)
        elif request.op == "stop":
            await supervisor.stop(names)
        elif request.op == "down":
            supervisor.say("devstack down: stopping all services", "warn")
            supervisor.request_shutdown(None)
            return {"ok": True, "pid": os.getpid()}
        elif request.op == "env":
            return self._env(names[0])
        elif request.op == "input":
            supervisor.write_input(names[0], request.data.encode())
        return {"ok": True, **self._statuses(names)}

    def _statuses(self, names: Sequence[str] = ()) -> dict[str, Any]:
        rows = self.supervisor.status()
        if names:
            rows = [row for row in rows if row.name in names]
        return {"services": [dataclasses.asdict(row) for row in rows]}

    def _env(self, name: str) -> dict[str, Any]:
        supervisor = self.supervisor
        self._require(name)
        status = {row.name: row for row in supervisor.status()}.get(name)
        values = supervisor.service_env(name)
        return {
            "ok": True,
            "service": name,
            "values": values,
            "pid": status.pid if status else None,
            "state": status.state if status else "stopped",
        }

    def _require(self, *names: str) -> None:
        known = self.supervisor.project.services
        unknown = [name for name in names if name not in known]
        if unknown:
            raise DevstackError([unknown_name_error("service", name, known) for name in unknown])

    def _say(self, message: str, level: Level = "error") -> None:
        self.supervisor.say(message, level)

    async def _follow(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Stream the services' output until the client leaves or the stack ends."""
        self._require(*request.services)
        wanted = set(request.services)
        backlog = FollowBacklog(FOLLOW_BACKLOG)

        def take(name: str, lines: list[str]) -> None:
            if not wanted or name in wanted:
                backlog.put(name, lines)

        # The log files opened (their ends noted) and the subscription in one step of the
        # loop: no line falls between. The tails are read in a thread, up to those ends:
        # 10,000 lines of each service (devstack ui) would hold the loop up ~16 ms each.
        opened = self._open_logs(request) if request.tail else []
        unsubscribe = self.supervisor.subscribe_output(take)
        try:
            await _send(writer, {"ok": True})
            for record in await asyncio.to_thread(_read_tails, opened, request.tail):
                await _send(writer, record)
            client_left = asyncio.ensure_future(reader.read())
            try:
                await self._pump(backlog, writer, client_left)
            finally:
                client_left.cancel()
        finally:
            unsubscribe()

    async def _watch(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Every service's status now, and again after each change, until the client
        leaves. Changes that come while a send is under way go out as one: a slow
        client gets the latest statuses, never a growing backlog. A quiet stack sends
        `{"alive": true}` every HEARTBEAT seconds: the UI tells an `up` stopped with
        Ctrl+Z from one with nothing to say."""
        changed = asyncio.Event()
        unsubscribe = self.supervisor.subscribe_states(lambda _status: changed.set())
        try:
            await _send(writer, {"ok": True, "pid": os.getpid(), **self._statuses()})
            client_left = asyncio.ensure_future(reader.read())
            try:
                while True:
                    waiting = asyncio.ensure_future(changed.wait())
                    either: set[asyncio.Future[Any]] = {waiting, client_left}
                    await asyncio.wait(
                        either, timeout=HEARTBEAT, return_when=asyncio.FIRST_COMPLETED
                    )
                    if client_left.done():
                        waiting.cancel()
                        return
                    if not changed.is_set():
                        waiting.cancel()
                        await _send(writer, ALIVE)
                        continue
                    changed.clear()
                    await _send(writer, self._statuses())
            finally:
                client_left.cancel()
        finally:
            unsubscribe()

    def _open_logs(self, request: Request) -> list[tuple[str, list[tuple[BinaryIO, int]]]]:
        """Each service's log files, oldest first, open, with where each ends now."""
        names = request.services or tuple(self.supervisor.project.services)
        log_dir = logfiles.log_dir(self.root)
        opened: list[tuple[str, list[tuple[BinaryIO, int]]]] = []
        try:
            for name in names:
                files: list[tuple[BinaryIO, int]] = []
                opened.append((name, files))
                current = logfiles.log_file(log_dir, name)
                for path in (current.with_name(logfiles.rotated_name(current.name)), current):
                    if (log := open_log(path)) is not None:
                        files.append(log)
        except BaseException:
            _read_tails(opened, 0)  # closes them
            raise
        return opened

    async def _pump(
        self,
        backlog: FollowBacklog,
        writer: asyncio.StreamWriter,
        client_left: asyncio.Future[bytes],
    ) -> None:
        while not client_left.done():
            records = backlog.take()
            for record in records:
                await _send(writer, record)
            if records:
                continue
            waiting = asyncio.ensure_future(backlog.ready.wait())
            either: set[asyncio.Future[Any]] = {waiting, client_left}
            try:
                await asyncio.wait(either, timeout=HEARTBEAT, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiting.cancel()
            if not backlog.ready.is_set() and not client_left.done():
                await _send(writer, ALIVE)


class FollowBacklog:
    """The live lines waiting to be sent to one `logs -f` client, at most `limit`
    characters of them (newlines counted); lines that do not fit are counted, and a
    `{"skipped": N}` record takes their place in the stream."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self.skipped = 0
        self.ready = asyncio.Event()
        self._records: collections.deque[dict[str, Any]] = collections.deque()

    def put(self, name: str, lines: list[str]) -> None:
        size = sum(len(line) + 1 for line in lines)
        if self.size + size > self.limit:
            self.skipped += len(lines)
        else:
            self._flush_skipped()
            self._records.append({"name": name, "lines": list(lines), "from": "live"})
            self.size += size
        self.ready.set()

    def take(self) -> list[dict[str, Any]]:
        """Everything waiting, oldest first (with the count of what was skipped)."""
        self._flush_skipped()
        records = list(self._records)
        self._records.clear()
        self.size = 0
        self.ready.clear()
        return records

    def _flush_skipped(self) -> None:
        if self.skipped:
            self._records.append({"skipped": self.skipped})
            self.skipped = 0


def _describe(error: OSError) -> str:
    name = errno.errorcode.get(error.errno or 0, "")
    return f"{error.strerror or error}" + (f", {name}" if name else "")


def _refusal(message: str) -> dict[str, Any]:
    return error_reply([Problem(message)], EXIT_USAGE)


async def _send(writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
    writer.write(encode(message))
    await writer.drain()


# -- log files -------------------------------------------------------------------------


def tail_lines(path: Path, count: int, block: int = 64 * 1024) -> list[str]:
    """The last `count` lines of a log file (fewer if it is shorter; none if missing)."""
    if count <= 0:
        return []
    opened = open_log(path)
    if opened is None:
        return []
    file, end = opened
    with file:
        return _tail_of(file, end, count, block)


def open_log(path: Path) -> tuple[BinaryIO, int] | None:
    """A log file open for reading and where it ends now; None if there is none."""
    try:
        # Non-blocking, and then only a regular file is read: a FIFO in its place
        # must not hang `logs` (or the `up` answering `logs -f -n N`).
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as error:
        raise DevstackError.single(
            f"cannot read {path}: {error.strerror or error}", exit_status=EXIT_FAILURE
        ) from None
    file = os.fdopen(descriptor, "rb")
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        file.close()
        return None
    return file, file.seek(0, os.SEEK_END)


def _tail_of(file: BinaryIO, end: int, count: int, block: int = 64 * 1024) -> list[str]:
    """The last `count` lines of `file` before offset `end`."""
    if count <= 0:
        return []
    position, data = end, b""
    # Read backwards until there are more newlines than lines wanted (or the start).
    while position > 0 and data.count(b"\n") <= count:
        step = min(block, position)
        position -= step
        file.seek(position)
        data = file.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:]


def _read_tails(
    opened: list[tuple[str, list[tuple[BinaryIO, int]]]], count: int
) -> list[dict[str, Any]]:
    """`logs-follow`'s tail records from log files opened beforehand; closes them."""
    records = []
    try:
        for name, files in opened:
            lines: list[str] = []
            for file, end in reversed(files):  # the current file first, then `.log.1`
                lines = _tail_of(file, end, count - len(lines)) + lines
            if lines:
                records.append({"name": name, "lines": lines, "from": "file"})
    finally:
        for _name, files in opened:
            for file, _end in files:
                file.close()
    return records


def is_separator(line: str) -> bool:
    """The line a log file gets each time the service starts (`----- started ... -----`)."""
    return line.startswith(LOG_SEPARATOR_PREFIX) and line.endswith(" -----")


# -- the client ------------------------------------------------------------------------


def repo_root(config_file: str | None) -> Path:
    """The repo a command controls: that of -f, or of the nearest devstack.yaml.

    Only the path: a devstack.yaml broken by an edit must not stop `ps` or `down`."""
    if config_file:
        return Path(config_file).resolve().parent
    from devstack.core.config import find_config

    return find_config(Path.cwd()).parent


def is_running(root: Path) -> bool:
    """Whether a `devstack up` of `root` runs now: its socket accepts connections
    (a killed one's socket, or a reused pid, does not count)."""
    return _is_live(recorded_socket_path(root))


def not_running(root: Path) -> DevstackError:
    return DevstackError.single(
        f"no devstack up is running in {root}", exit_status=EXIT_FAILURE, code="not-running"
    )


def connect(root: Path, timeout: float = CLIENT_TIMEOUT) -> socket.socket:
    """A connection to the `up` running for `root`; not running -> one clear error.

    Every read and write on it then waits at most `timeout`."""
    path = recorded_socket_path(root)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    _connect_timeout(sock, timeout)
    try:
        sock.connect(os.fspath(path))
    except OSError as error:
        sock.close()
        if error.errno in (errno.EAGAIN, errno.ETIMEDOUT):
            raise no_answer(root, timeout) from None
        if error.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
            raise not_running(root) from None  # no socket, or one a killed `up` left
        raise DevstackError.single(
            f"cannot reach the devstack up of {root} at {path}: {error.strerror}",
            exit_status=EXIT_FAILURE,
        ) from None
    sock.settimeout(timeout)
    return sock


def no_answer(root: Path, timeout: float) -> DevstackError:
    """The error for an `up` that accepts no connection or says nothing for `timeout`."""
    from devstack.runtime.runstate import read_run

    pid = (read_run(root / ".devstack") or {}).get("pid")
    if isinstance(pid, int) and _is_stopped(pid):
        return DevstackError.single(
            f"the devstack up of {root} (pid {pid}) is stopped (Ctrl+Z?) and cannot answer",
            hint=f"`fg` in its terminal, or `kill -CONT {pid}`, lets it run again",
            exit_status=EXIT_FAILURE,
            code="not-answering",
        )
    who = f" (pid {pid})" if isinstance(pid, int) else ""
    return DevstackError.single(
        f"the devstack up of {root}{who} did not answer within {timeout:g}s",
        hint="it may be stuck; Ctrl+C in its terminal stops it, a second Ctrl+C kills it",
        exit_status=EXIT_FAILURE,
        code="not-answering",
    )


def _is_stopped(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


def request(root: Path, op: str, **fields: Any) -> dict[str, Any]:
    """Send one request and return its (successful) reply; errors become DevstackError."""
    stream = open_stream(root, op, **fields)
    try:
        return next(stream)
    finally:
        stream.close()


def open_stream(
    root: Path, op: str, timeout: float = CLIENT_TIMEOUT, **fields: Any
) -> Generator[dict[str, Any], None, None]:
    """Send one request; yield the reply, then every further record until the end.

    The server's `{"alive": true}` records are not yielded: they only prove, within
    `timeout`, that the `up` still runs."""
    with connect(root, timeout) as sock, sock.makefile("rb") as incoming:
        # Refused at once (another user), the write may fail: the answer is still to be read.
        try:
            sock.sendall(encode({"op": op, **fields}))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except TimeoutError:
            raise no_answer(root, timeout) from None
        first = True
        while True:
            try:
                line = incoming.readline()
            except TimeoutError:
                raise no_answer(root, timeout) from None
            if not line:
                break
            message = json.loads(line)
            if message.get("alive"):
                continue
            if not message.get("ok", True):
                raise error_from_reply(message)
            first = False
            yield message
        if first:
            raise DevstackError.single(
                f"the devstack up of {root} ended before answering", exit_status=EXIT_FAILURE
            )


def wait_for_exit(pid: int, root: Path, check_every: float = CLIENT_TIMEOUT) -> None:
    """Return once process `pid` (the `up` of `root`) has exited; a DevstackError if it
    is stopped (Ctrl+Z) meanwhile, which it is checked for every `check_every` seconds.
    Stopping may take long (each service's stop_timeout), so there is no overall bound.
    The exit is awaited on a pidfd or kqueue where the OS has them (`platform`)."""
    import psutil

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    while platform.current().wait_gone([process], check_every):
        if _is_stopped(pid):
            raise no_answer(root, check_every)
