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
client leaves. A message that is not JSON, not an object, of another version or
longer than MAX_MESSAGE gets an error reply; the server carries on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import socket
import stat
import tempfile
from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack import logfiles
from devstack.errors import EXIT_FAILURE, EXIT_USAGE, DevstackError, Problem, unknown_name_error
from devstack.files import write_atomically
from devstack.runtime import platform

if TYPE_CHECKING:
    from devstack.model import Project
    from devstack.runtime.stackapi import StackAPI

PROTOCOL_VERSION = 1
MAX_MESSAGE = 64 * 1024
OPS = frozenset({"ps", "restart", "start", "stop", "down", "logs-follow", "env"})
NEEDS_SERVICES = frozenset({"restart", "start", "stop"})
SOCKET_NAME = "control.sock"
PATH_RECORD = "control.path"
# A `logs -f` client that falls this many batches behind is cut off, not buffered forever.
FOLLOW_BACKLOG = 10_000
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


def encode(message: Mapping[str, Any]) -> bytes:
    """One protocol line: the message with the protocol version, as compact JSON."""
    return json.dumps({"v": PROTOCOL_VERSION, **message}, separators=(",", ":")).encode() + b"\n"


def decode(line: bytes) -> dict[str, Any]:
    """A protocol line as a JSON object; ProtocolError says what is wrong with it."""
    if len(line) > MAX_MESSAGE:
        raise ProtocolError(f"message longer than {MAX_MESSAGE} bytes")
    try:
        message = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"not a JSON message: {error}") from None
    if not isinstance(message, dict):
        raise ProtocolError("a message must be a JSON object")
    if message.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"protocol version {message.get('v')!r} is not supported (this devstack speaks"
            f" {PROTOCOL_VERSION}); use the devstack that runs `up`"
        )
    return message


def parse_request(message: Mapping[str, Any]) -> Request:
    op = message.get("op")
    if op not in OPS:
        raise ProtocolError(f"unknown op {op!r}; known: {', '.join(sorted(OPS))}")
    services = message.get("services", [])
    if not isinstance(services, list) or not all(isinstance(name, str) for name in services):
        raise ProtocolError("'services' must be a list of service names")
    if op in NEEDS_SERVICES and not services:
        raise ProtocolError(f"{op} needs at least one service name")
    if op == "env" and len(services) != 1:
        raise ProtocolError("env needs exactly one service name")
    tail = message.get("tail", 0)
    if not isinstance(tail, int) or isinstance(tail, bool) or tail < 0:
        raise ProtocolError("'tail' must be a number of lines, 0 or more")
    by = message.get("by", "")
    if not isinstance(by, str) or len(by) > MAX_BY:
        raise ProtocolError(f"'by' must be a client's name of at most {MAX_BY} characters")
    return Request(op=op, services=tuple(services), tail=tail, by=by)


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
    name = f"devstack-{hashlib.sha256(os.fsencode(root)).hexdigest()[:16]}.sock"
    runtime_dir = environ.get("XDG_RUNTIME_DIR")
    if runtime_dir and fits_af_unix(Path(runtime_dir) / name):
        return Path(runtime_dir) / name
    return Path(tempfile.gettempdir()) / f"devstack-{uid}" / name


def recorded_socket_path(root: Path) -> Path:
    """Where the running `up` of `root` said its socket is (or would be)."""
    try:
        recorded = (root / ".devstack" / PATH_RECORD).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        recorded = ""
    return Path(recorded) if recorded else root / ".devstack" / SOCKET_NAME


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


def _is_live(path: Path) -> bool:
    """Whether something accepts connections on the socket at `path`."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def bind_socket(root: Path, environ: Mapping[str, str], uid: int) -> socket.socket:
    """A listening socket for `root`, replacing a stale one; its path recorded."""
    path = choose_socket_path(root, environ, uid)
    state_dir = root / ".devstack"
    _private_dir(state_dir, uid)
    _private_dir(path.parent, uid)
    if path.exists() or path.is_symlink():
        if _is_live(path):
            raise DevstackError.single(
                f"another devstack up already answers on {path}",
                hint="`devstack ps` shows it; `devstack down` stops it",
                exit_status=EXIT_FAILURE,
            )
        path.unlink()  # left by an `up` that was killed: nobody listens on it
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(os.fspath(path))
        path.chmod(0o600)  # the 0700 directory already keeps others out meanwhile
        listener.listen(16)
        listener.setblocking(False)
        write_atomically(state_dir / PATH_RECORD, f"{path}\n")
    except BaseException:
        listener.close()
        raise
    return listener


# -- the server ------------------------------------------------------------------------


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end (SO_PEERCRED, LOCAL_PEERCRED, or the
    owner of the socket's private directory: `platform`); None if unknown."""
    return platform.current().peer_uid(sock)


async def serve(supervisor: StackAPI, *, project: Project) -> None:
    """Answer control requests for `supervisor` until cancelled; removes the socket then."""
    listener = bind_socket(project.root, os.environ, os.getuid())
    path = Path(listener.getsockname())
    identity = path.stat().st_ino
    server = ControlServer(supervisor, root=project.root, own_uid=os.getuid())
    listening = await asyncio.start_unix_server(server.handle, sock=listener, limit=MAX_MESSAGE)
    try:
        await listening.serve_forever()
    finally:
        listening.close()
        await server.close()
        _remove_socket(project.root, path, identity)


def _remove_socket(root: Path, path: Path, identity: int) -> None:
    """Remove our socket and its record, unless a newer `up` has replaced them."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_ino == identity:
            path.unlink()
    record = root / ".devstack" / PATH_RECORD
    with contextlib.suppress(FileNotFoundError):
        if record.read_text(encoding="utf-8").strip() == str(path):
            record.unlink()


class ControlServer:
    """Answers one request per connection on behalf of a supervisor."""

    def __init__(self, supervisor: StackAPI, *, root: Path, own_uid: int) -> None:
        self.supervisor = supervisor
        self.root = root
        self.own_uid = own_uid
        self._handlers: set[asyncio.Task[Any]] = set()

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
        finally:
            self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, BrokenPipeError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        uid = peer_uid(writer.get_extra_info("socket"))
        if uid is not None and uid != self.own_uid:
            await _send(
                writer, _refusal(f"uid {uid} may not control the devstack of uid {self.own_uid}")
            )
            return
        try:
            line = await reader.readline()
        except ValueError:  # longer than the stream's limit
            await _send(writer, _refusal(f"message longer than {MAX_MESSAGE} bytes"))
            return
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
            reply = await self._reply(request)
        except DevstackError as error:
            reply = error_reply(error.problems, error.exit_status)
        except Exception as error:  # a bug: say so on both ends, keep serving the others
            message = f"internal error during {request.op}: {error!r}"
            self.supervisor.say(message, "error")
            reply = error_reply([Problem(message)], EXIT_FAILURE)
        await _send(writer, reply)

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

    async def _follow(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Stream the services' output until the client leaves or the stack ends."""
        self._require(*request.services)
        wanted = set(request.services)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        def take(name: str, lines: list[str]) -> None:
            if not wanted or name in wanted:
                queue.put_nowait({"name": name, "lines": list(lines), "from": "live"})

        # The tail and the subscription in one step of the loop: no line falls between.
        past = self._tails(request) if request.tail else []
        unsubscribe = self.supervisor.subscribe_output(take)
        try:
            await _send(writer, {"ok": True})
            for record in past:
                await _send(writer, record)
            client_left = asyncio.ensure_future(reader.read())
            try:
                await self._pump(queue, writer, client_left)
            finally:
                client_left.cancel()
        finally:
            unsubscribe()

    def _tails(self, request: Request) -> list[dict[str, Any]]:
        names = request.services or tuple(self.supervisor.project.services)
        log_dir = logfiles.log_dir(self.root)
        records = []
        for name in names:
            lines = tail_lines(logfiles.log_file(log_dir, name), request.tail)
            if lines:
                records.append({"name": name, "lines": lines, "from": "file"})
        return records

    async def _pump(
        self,
        queue: asyncio.Queue[dict[str, Any]],
        writer: asyncio.StreamWriter,
        client_left: asyncio.Future[bytes],
    ) -> None:
        while not client_left.done():
            if queue.qsize() > FOLLOW_BACKLOG:
                await _send(writer, _refusal("this client fell too far behind; stopped following"))
                return
            getting = asyncio.ensure_future(queue.get())
            try:
                waiting: set[asyncio.Future[Any]] = {getting, client_left}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            finally:
                got = getting.done()
                if not got:
                    getting.cancel()
            if not got:
                return  # the client left (EOF, or it sent something it should not have)
            await _send(writer, getting.result())


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
    try:
        file = path.open("rb")
    except FileNotFoundError:
        return []
    with file:
        end = file.seek(0, os.SEEK_END)
        position, data = end, b""
        # Read backwards until there are more newlines than lines wanted (or the start).
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            file.seek(position)
            data = file.read(step) + data
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[-count:]


def is_separator(line: str) -> bool:
    """The line a log file gets each time the service starts (`----- started ... -----`)."""
    return line.startswith(LOG_SEPARATOR_PREFIX) and line.endswith(" -----")


# -- the client ------------------------------------------------------------------------


def repo_root(config_file: str | None) -> Path:
    """The repo a command controls: that of -f, or of the nearest devstack.yaml.

    Only the path: a devstack.yaml broken by an edit must not stop `ps` or `down`."""
    if config_file:
        return Path(config_file).resolve().parent
    from devstack.config import find_config

    return find_config(Path.cwd()).parent


def is_running(root: Path) -> bool:
    """Whether a `devstack up` of `root` runs now: its socket accepts connections
    (a killed one's socket, or a reused pid, does not count)."""
    return _is_live(recorded_socket_path(root))


def not_running(root: Path) -> DevstackError:
    return DevstackError.single(
        f"no devstack up is running in {root}", exit_status=EXIT_FAILURE, code="not-running"
    )


def connect(root: Path) -> socket.socket:
    """A connection to the `up` running for `root`; not running -> one clear error."""
    path = recorded_socket_path(root)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(os.fspath(path))
    except OSError as error:
        sock.close()
        if error.errno in (errno.ENOENT, errno.ECONNREFUSED, errno.ENOTDIR):
            raise not_running(root) from None  # no socket, or one a killed `up` left
        raise DevstackError.single(
            f"cannot reach the devstack up of {root} at {path}: {error.strerror}",
            exit_status=EXIT_FAILURE,
        ) from None
    return sock


def request(root: Path, op: str, **fields: Any) -> dict[str, Any]:
    """Send one request and return its (successful) reply; errors become DevstackError."""
    stream = open_stream(root, op, **fields)
    try:
        return next(stream)
    finally:
        stream.close()


def open_stream(root: Path, op: str, **fields: Any) -> Generator[dict[str, Any], None, None]:
    """Send one request; yield the reply, then every further record until the end."""
    with connect(root) as sock, sock.makefile("rb") as incoming:
        # Refused at once (another user), the write may fail: the answer is still to be read.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(encode({"op": op, **fields}))
        first = True
        for line in incoming:
            message = json.loads(line)
            if not message.get("ok", True):
                raise error_from_reply(message)
            first = False
            yield message
        if first:
            raise DevstackError.single(
                f"the devstack up of {root} ended before answering", exit_status=EXIT_FAILURE
            )


def wait_for_exit(pid: int) -> None:
    """Return once process `pid` has exited (a pidfd or kqueue where the OS has them)."""
    import psutil

    with contextlib.suppress(psutil.NoSuchProcess):
        platform.current().wait_gone([psutil.Process(pid)], None)
