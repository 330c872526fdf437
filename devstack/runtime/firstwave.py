"""`devstack up`'s fast start (issue 16): the services that depend on nothing are
spawned from a compiled plan before asyncio, yaml and the config code are imported;
the asyncio supervisor adopts them once it runs.

The plan is what the last plain `devstack up` resolved for those services (argv, cwd,
env), kept in `.devstack/plan` (0600, written atomically, read with marshal, the
standard library's fastest loader). It is trusted only while its key holds: the
content of devstack.yaml and of every env file that fed any service (present or
absent), the whole shell environment (hashed, never stored), whether stdout is a
terminal (colour), and devstack's version and plan format. Anything else, and a run
that differs in any way (arguments, another platform, a stale run to clean up, the
lock held), takes the ordinary path. Services with a port, a readiness probe or a
terminal of their own are left to the supervisor (a port is checked before a start).

The guarantees hold from the first spawn: the repo's lock and the run id are taken
first, the guardian is started and devstack becomes a subreaper before anything is
spawned, each service gets a session of its own (setsid), SIGPIPE and SIGXFSZ back
at their defaults (as subprocess does), the run's markers in its environment, and
its stdout and stderr as pipes that hold what it prints until the supervisor
adopts it and prefixes every line. The supervisor then resolves everything again
and adopts a child only if argv, cwd and env are exactly what it would spawn;
otherwise the child is stopped and the service spawned afresh.

Until the supervisor takes over, a thread shows the children's lines through the
real Output (so their log files and prefixes are what they always are), while the
main thread imports the rest and checks the config and the environment as always;
if that check now finds an error (something outside the key changed, such as a cwd
that was removed), the children are killed again and `up` says so.

At import, only `contextlib`, `marshal`, `os` and `sys`; the guardian, the platform
(ctypes for the subreaper, the cgroup), threading and Output come after the plan is
found good.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import sys

TYPE_CHECKING = False  # typing's costs an import this module exists to avoid
if TYPE_CHECKING:
    import socket
    from collections.abc import Iterable, Mapping
    from typing import Any

    from devstack.runtime.membership import RunCgroup
    from devstack.runtime.output import Output, Stream

PLAN_FILE = "plan"
PLAN_FORMAT = 2  # 2: secrets kept as places in the env files ("spans")
LOCK_FILE = "up.lock"  # runstate's: the same lock, taken the same way
RUN_FILE = "run.json"  # runstate's: present only when a run did not end cleanly
RECORD_FILE = "members.json"  # membership's: the same
CONFIG_NAME = "devstack.yaml"
OFF_VAR = "DEVSTACK_FAST_START"  # "0": always take the ordinary path
CGROUP_VAR, CGROUP_PREFIX = "DEVSTACK_CGROUP", "devstack-"  # membership's
SOCKET_NAME, PATH_RECORD = "control.sock", "control.path"  # control's
FROM_PLAN = "started from the kept plan"
STOP, MORE = b"x", b"+"  # what the main thread tells the thread that shows lines


# -- the key --------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    try:
        from _blake2 import blake2b  # hashlib's own, without loading OpenSSL (~2 ms)
    except ImportError:  # pragma: no cover - a Python built without it
        from hashlib import blake2b
    return blake2b(data, digest_size=32).hexdigest()


def file_digest(path: str) -> str | None:
    """The digest of a file's content; None when it does not exist (or is unreadable,
    which makes the key differ from any run that could read it)."""
    try:
        with open(path, "rb") as file:
            return _digest(file.read())
    except OSError:
        return None


def environ_digest(environ: Mapping[str, str]) -> str:
    """One digest of every shell variable, name and value: the values never reach disk."""
    return _digest("\0".join(f"{k}={v}" for k, v in sorted(environ.items())).encode())


def plan_key(
    config_path: str,
    env_files: Iterable[str],
    environ: Mapping[str, str],
    *,
    tty: bool,
    version: str,
) -> dict[str, object]:
    """What the plan depends on; a plan is used only if this is equal when read."""
    files = [config_path, *sorted(set(env_files) - {config_path})]
    return {
        "format": PLAN_FORMAT,
        "version": version,
        "files": {path: file_digest(path) for path in files},
        "environ": environ_digest(environ),
        "tty": tty,
    }


# -- writing and reading the plan -------------------------------------------------------


def write_plan(
    state_dir: str,
    key: dict[str, object],
    *,
    names: list[str],
    colour: bool,
    fd_limit: int,
    services: list[dict[str, object]],
) -> None:
    """Keep the plan for the next run: private (0600) and atomic, like run.json.
    `names`: every service the run shows (the first wave's lines are padded to them);
    `fd_limit`: the open-file limit `up` raises itself to before it spawns."""
    data = marshal.dumps(
        {"key": key, "names": names, "colour": colour, "fd_limit": fd_limit, "services": services}
    )
    # Never its parents: a repo renamed meanwhile is not made again at its old path.
    with contextlib.suppress(FileExistsError):
        os.mkdir(state_dir, 0o700)
    path = os.path.join(state_dir, PLAN_FILE)
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        descriptor = os.open(temporary, flags, 0o600)
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


class Planned:
    """One service of the first wave as the plan has it."""

    __slots__ = ("argv", "cwd", "env", "name", "shell")

    def __init__(
        self, name: str, argv: list[str], cwd: str, env: dict[str, str], shell: list[str]
    ) -> None:
        self.name, self.argv, self.cwd, self.env = name, argv, cwd, env
        self.shell = shell  # variables whose value is the shell's (never kept on disk)

    def environment(self, environ: Mapping[str, str]) -> dict[str, str] | None:
        """Its resolved env: the kept values and the shell's own; None if one is gone."""
        if any(name not in environ for name in self.shell):
            return None
        return {**self.env, **{name: environ[name] for name in self.shell}}


class Plan:
    __slots__ = ("colour", "config_path", "fd_limit", "names", "services")

    def __init__(
        self,
        config_path: str,
        names: list[str],
        colour: bool,
        fd_limit: int,
        services: list[Planned],
    ) -> None:
        self.config_path, self.names = config_path, names
        self.colour, self.fd_limit, self.services = colour, fd_limit, services


def read_plan(
    state_dir: str, environ: Mapping[str, str], *, tty: bool, version: str
) -> Plan | None:
    """The plan kept in `state_dir` if its key still holds, else None."""
    try:
        descriptor = os.open(os.path.join(state_dir, PLAN_FILE), os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(descriptor, "rb") as file:
            data = marshal.loads(file.read())
    except (OSError, EOFError, ValueError, TypeError):
        return None
    if not _well_formed(data):
        return None
    files = list(data["key"]["files"])
    if not files or not all(isinstance(path, str) for path in files):
        return None
    if plan_key(files[0], files[1:], environ, tty=tty, version=version) != data["key"]:
        return None
    services = []
    read: dict[str, bytes | None] = {}
    for s in data["services"]:
        env = _with_spans(s["env"], s["spans"], data["key"]["files"], read)
        if env is None:
            return None
        services.append(Planned(s["name"], s["argv"], s["cwd"], env, s["shell"]))
    return Plan(files[0], data["names"], data["colour"], data["fd_limit"], services)


def _with_spans(
    env: dict[str, str],
    spans: dict[str, list[Any]],
    digests: dict[str, str | None],
    read: dict[str, bytes | None],
) -> dict[str, str] | None:
    """A service's env with its secrets read back from the places the plan kept
    (adopt._secrets_as_spans): from the very bytes whose digest is the key's, so a file
    changed since the key was checked gives no value at all; None then."""
    values = dict(env)
    for name, (path, offset, length) in spans.items():
        if path not in read:
            try:
                with open(path, "rb") as file:
                    data: bytes | None = file.read()
            except OSError:
                data = None
            read[path] = data if data is not None and _digest(data) == digests.get(path) else None
        data = read[path]
        if data is None or offset + length > len(data):
            return None
        try:
            values[name] = data[offset : offset + length].decode()
        except UnicodeDecodeError:
            return None
    return values


def _well_formed(plan: Any) -> bool:
    """A dict of the shape write_plan writes, holding only plain values."""
    if not isinstance(plan, dict) or not isinstance(plan.get("key"), dict):
        return False
    key, services = plan["key"], plan.get("services")
    if not isinstance(key.get("files"), dict) or not isinstance(services, list):
        return False
    fd_limit = plan.get("fd_limit")
    return (
        isinstance(plan.get("colour"), bool)
        and isinstance(fd_limit, int)
        and not isinstance(fd_limit, bool)
        and _strings(plan.get("names"))
        and all(
            isinstance(service, dict)
            and isinstance(service.get("name"), str)
            and isinstance(service.get("cwd"), str)
            and _strings(service.get("argv"))
            and isinstance(service.get("shell"), list)
            and all(isinstance(name, str) for name in service["shell"])
            and isinstance(service.get("env"), dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in service["env"].items())
            and _spans(service.get("spans"), key["files"])
            for service in services
        )
    )


def _spans(spans: object, files: dict[str, object]) -> bool:
    """{name: [path, offset, length]}, each path one whose digest the key holds."""
    return isinstance(spans, dict) and all(
        isinstance(name, str)
        and isinstance(span, list)
        and len(span) == 3
        and isinstance(span[0], str)
        and span[0] in files
        and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in span[1:])
        for name, span in spans.items()
    )


def _strings(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, str) for v in value)


# -- the environment a service gets ----------------------------------------------------


def spawn_env(
    values: Mapping[str, str],
    *,
    run_id: str,
    name: str,
    colour: bool,
    repo: str | None = None,
    cwd: str | None = None,
) -> dict[str, str]:
    """The environment a service's process gets: its resolved env plus devstack's own."""
    env = dict(values)
    env.setdefault("PYTHONUNBUFFERED", "1")  # else Python services are silent through a pipe
    if cwd is not None:
        # What a shell exports: a command exec'd without one (devstack.core.cmdline) still
        # finds PWD, as under npm, pnpm or turbo.
        env.setdefault("PWD", cwd)
    if colour:
        env.setdefault("FORCE_COLOR", "1")
    # The markers by which every process of this run is found again; never overridden.
    env["DEVSTACK_RUN_ID"] = run_id
    env["DEVSTACK_SERVICE"] = name
    if repo is not None:
        # The next `up` of this repo stops what carries it, even if run.json is gone.
        env["DEVSTACK_REPO"] = repo
    return env


# -- the first wave ---------------------------------------------------------------------


class Child:
    """A service spawned from the plan, waiting to be adopted: its pid and the read
    ends of its stdout and stderr pipes, and what it was spawned with. `announced`:
    its start was said (and its log file began) before the supervisor ran."""

    __slots__ = ("announced", "argv", "cwd", "env", "err", "out", "pid")

    def __init__(
        self, pid: int, out: int, err: int, argv: list[str], cwd: str, env: dict[str, str]
    ) -> None:
        self.pid, self.out, self.err = pid, out, err
        self.argv, self.cwd, self.env = argv, cwd, env
        self.announced = False

    def matches(self, argv: Iterable[str], cwd: str, env: Mapping[str, str]) -> bool:
        return self.argv == list(argv) and self.cwd == cwd and self.env == dict(env)


class Early:
    """What the fast start did (from the kept plan, or on a first `up` once its checks
    passed): the lock it holds, the run id, the guardian it started, and the children
    the supervisor is to adopt (`take`) or end (`abandon`).

    Until the supervisor takes over (`hand_over`), a thread shows the children's
    lines through the real Output, as the supervisor would, while the rest of devstack
    is imported and the config checked.
    """

    def __init__(
        self, config_path: str, lock: int, run_id: str, colour: bool, origin: str = FROM_PLAN
    ) -> None:
        self.config_path = config_path
        self.origin = origin
        self.lock = lock
        self.run_id = run_id
        self.colour = colour
        self.children: dict[str, Child] = {}
        self._cgroup: str | None = None  # the run's cgroup (a path), until `up` takes it
        self.listener: socket.socket | None = None  # the control socket, until `up` takes it
        self.output: Output | None = None
        self._pump: Any = None  # the thread
        self._wake = (-1, -1)
        self._added: list[tuple[str, Child]] = []  # spawned by spawn_more, for the thread
        self._failure: BaseException | None = None
        self._pending: list[int] = []  # shutdown signals received before the supervisor ran
        self._deferred: dict[int, Any] = {}  # the handlers they replaced

    def take(self, name: str) -> Child | None:
        return self.children.pop(name, None)

    def give_lock(self) -> tuple[int, str]:
        """The lock and run id, for runstate.acquire, which releases the lock at the end."""
        lock, self.lock = self.lock, -1
        return lock, self.run_id

    def take_listener(self) -> socket.socket | None:
        """The control socket, for `up`'s server, which removes it at the end."""
        listener, self.listener = self.listener, None
        return listener

    def take_cgroup(self) -> RunCgroup | None:
        """The run's cgroup, for `up`, which removes it at the end."""
        if self._cgroup is None:
            return None
        from pathlib import Path

        from devstack.runtime.membership import RunCgroup

        path, self._cgroup = self._cgroup, None
        return RunCgroup(Path(path))

    def _defer_signals(self) -> None:
        """From the first spawn until the supervisor handles them, Ctrl+C, SIGTERM and
        SIGHUP are kept for it (`pending_signals`): the services are then stopped as
        any Ctrl+C stops them (their stop signal, their stop_timeout), not killed."""
        import signal

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._deferred[signum] = signal.signal(signum, self._keep_signal)

    def _keep_signal(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    def pending_signals(self) -> list[int]:
        """The shutdown signals received since the first spawn, for the supervisor,
        whose handlers have replaced the fast start's by now."""
        self._deferred.clear()
        pending, self._pending = self._pending, []
        return pending

    def _restore_signals(self) -> list[int]:
        """The handlers from before the first spawn back; the signals kept meanwhile."""
        import signal

        for signum, handler in self._deferred.items():
            signal.signal(signum, handler)
        return self.pending_signals()

    def close(self) -> None:
        """The run ends before the supervisor took everything: end the children not
        adopted, and release the lock, close the control socket and remove the cgroup
        if nobody took them. Safe to call again."""
        if self._deferred:  # nobody is left to stop the services gently
            self._restore_signals()
        self.abandon()
        if self.listener is not None:
            path = self.listener.getsockname()
            self.listener.close()
            self.listener = None
            with contextlib.suppress(OSError):
                os.unlink(path)
        if self.lock >= 0:
            os.close(self.lock)
            self.lock = -1
        cgroup = self.take_cgroup()
        if cgroup is not None:
            cgroup.leave_and_remove()

    def spawn(
        self,
        services: list[Planned],
        environ: Mapping[str, str],
        *,
        names: list[str],
        fd_limit: int,
        timestamps: bool = False,
    ) -> bool:
        """Spawn `services` now, with everything `up` does before its first spawn, in
        the same order, and show their lines from a thread; False (and the lock
        released: `close`) when the ordinary path must do it (a spawn that cannot be
        made this way). `names`: every service the run shows (lines are padded to them);
        `fd_limit`: the open-file limit `up` raises itself to before it spawns."""
        try:
            from pathlib import Path

            from devstack.runtime import platform
            from devstack.runtime.guardian import start_guardian

            raise_fd_limit(fd_limit)
            start_guardian(self.run_id, Path(os.path.dirname(self.config_path), ".devstack"))
            # The portable platform has none: the guardian and the recorded members
            # end what the services orphan, as on its ordinary path.
            platform.current().become_subreaper()
            # After the guardian (which must not be in it), before the first spawn:
            # membership.RunCgroup.create's, without membership's imports. Its record is
            # written by `up` once runstate holds the run (it reads records as a dead
            # run's leftovers).
            if environ.get(CGROUP_VAR, "1") != "0":
                self._cgroup = platform.current().create_cgroup(CGROUP_PREFIX + self.run_id)
            # A stack nobody can control must not run (issue 11 §2): bound before the
            # first spawn, as the supervisor does; else the ordinary path binds it, or
            # says why it cannot, before anything starts.
            self.listener = _bind_control_socket(os.path.dirname(self.config_path))
            if self.listener is None:
                self.close()
                return False
            self._defer_signals()
            _spawn_all(self, services, environ)
            if self.children:
                self.start_pump(names, timestamps=timestamps)
        except (OSError, NotImplementedError):  # NotImplementedError: no POSIX_SPAWN_SETSID
            pending = self._restore_signals()
            self.close()  # the ordinary path tries again, and says what fails
            for signum in pending:
                os.kill(os.getpid(), signum)  # as if it came now: the ordinary path's
            return False
        except BaseException:
            self.close()
            raise
        return True

    def start_pump(self, names: list[str], *, timestamps: bool = False) -> None:
        """Say that the children started and show their lines from a thread. The Output
        is made here, in the main thread: importing it (asyncio) in the thread while
        the main thread imports the rest held the first lines up by ~100 ms."""
        import threading
        from pathlib import Path

        from devstack.core.logfiles import log_dir
        from devstack.runtime.lean import one_malloc_arena
        from devstack.runtime.output import Output

        one_malloc_arena()  # before the first thread (runtime/lean.py)
        root = Path(os.path.dirname(self.config_path))
        self.output = output = Output(
            names,
            stream=sys.stdout.buffer,
            color=self.colour,
            timestamps=timestamps,
            log_dir=log_dir(root),
        )
        for name, child in self.children.items():
            output.started(name, child.pid)
            child.announced = True
        self._wake = os.pipe()
        # A daemon: should devstack end without a hand-over, the guardian ends the children.
        self._pump = threading.Thread(
            target=self._show, args=(output, list(self.children.items())), name="first-wave"
        )
        self._pump.daemon = True
        self._pump.start()

    def spawn_more(
        self, services: list[Planned], environ: Mapping[str, str], names: list[str]
    ) -> list[str]:
        """Spawn the services of the first wave the kept plan left out (a value built
        from the shell's, or one devstack would mask: never written to the plan) as
        the plan's were, once `up` has resolved and checked them; their names. The
        thread that shows the plan's children's lines shows theirs too (`names`: every
        service the run shows, should it not run yet)."""
        before = set(self.children)
        with contextlib.suppress(NotImplementedError):  # the supervisor spawns the rest
            _spawn_all(self, [s for s in services if s.name not in before], environ)
        added = [(name, child) for name, child in self.children.items() if name not in before]
        if added and self._pump is not None:
            self._added.extend(added)  # list.extend is atomic: the thread takes them
            os.write(self._wake[1], MORE)
        elif added and self.output is None:
            self.start_pump(names)
        return [name for name, _ in added]

    def hand_over(self) -> Output | None:
        """Stop showing lines here; the Output they went through, for the supervisor.
        What the children print from now on waits in their pipes, and an unfinished
        line in the Output."""
        if self._pump is not None:
            os.write(self._wake[1], STOP)
            self._pump.join()
            self._pump = None
            for fd in self._wake:
                os.close(fd)
        if self._failure is not None:
            raise self._failure
        return self.output

    def _show(self, output: Output, children: list[tuple[str, Child]]) -> None:
        try:
            self._show_lines(output, children)
        except BaseException as error:  # handed to the main thread by hand_over
            self._failure = error

    def _show_lines(self, output: Output, children: list[tuple[str, Child]]) -> None:
        import selectors  # epoll on Linux, kqueue on macOS

        selector = selectors.DefaultSelector()

        def watch(name: str, child: Child) -> None:
            out: tuple[str, Stream] = (name, "out")
            err: tuple[str, Stream] = (name, "err")
            selector.register(child.out, selectors.EVENT_READ, out)
            selector.register(child.err, selectors.EVENT_READ, err)

        with selector:
            selector.register(self._wake[0], selectors.EVENT_READ)
            for name, child in children:
                watch(name, child)
            while True:
                for key, _ in selector.select():
                    if key.data is None:  # the main thread's word
                        if STOP in os.read(key.fd, 64):
                            return
                        while self._added:  # spawn_more's children: said here, in order
                            name, child = self._added.pop(0)
                            output.started(name, child.pid)
                            child.announced = True
                            watch(name, child)
                        continue
                    data = os.read(key.fd, 65536)
                    if data:
                        name, stream = key.data
                        output.feed(name, stream, data)
                    else:  # the end: the supervisor reads it again and closes the stream
                        selector.unregister(key.fd)

    def abandon(self) -> list[str]:
        """End every child not adopted (SIGKILL to its session, then reaped); their names."""
        import signal

        with contextlib.suppress(Exception):  # the children end all the same
            self.hand_over()
        names = list(self.children)
        for child in self.children.values():
            end_child(child, signal.SIGKILL)
        self.children.clear()
        return names


def end_child(child: Child, sig: int) -> None:
    """Signal a child's whole session and reap it; close what it was read through."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, sig)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(child.pid, 0)
    for fd in (child.out, child.err):
        with contextlib.suppress(OSError):
            os.close(fd)


def launch(argv: list[str], environ: Mapping[str, str], version: str) -> Early | None:
    """Spawn the first wave of a plain `devstack up` from the kept plan; None when the
    ordinary path must do everything (no plan, a key that changed, anything unusual)."""
    if argv != ["up"] or not supported(environ):
        return None
    try:
        config_path = _find_config(os.getcwd())
    except OSError:  # the directory was deleted: the ordinary path says so
        return None
    if config_path is None:
        return None
    state_dir = os.path.join(os.path.dirname(config_path), ".devstack")
    tty = sys.stdout.isatty()
    plan = read_plan(state_dir, environ, tty=tty, version=version)
    if plan is None or plan.config_path != config_path:
        return None
    return start(
        config_path,
        plan.services,
        environ,
        names=plan.names,
        colour=plan.colour,
        fd_limit=plan.fd_limit,
    )


def start(
    config_path: str,
    services: list[Planned],
    environ: Mapping[str, str],
    *,
    names: list[str],
    colour: bool,
    fd_limit: int,
) -> Early | None:
    """`claim` the repo and `Early.spawn` the kept plan's services."""
    early = claim(config_path, colour)
    if early is not None and not early.spawn(services, environ, names=names, fd_limit=fd_limit):
        return None
    return early


def claim(config_path: str, colour: bool, origin: str = FROM_PLAN) -> Early | None:
    """Take the repo's lock and a run id for a run that spawns before the supervisor
    runs; None when the ordinary path must (the lock is held, or an earlier run left
    something to clean up). `origin`: how `up` says where children it stops came from."""
    state_dir = os.path.join(os.path.dirname(config_path), ".devstack")
    lock = _take_lock(state_dir)
    if lock is None:
        return None
    return Early(config_path, lock, os.urandom(8).hex(), colour, origin)


def supported(environ: Mapping[str, str]) -> bool:
    """Whether services may be spawned before the supervisor runs: os.posix_spawn
    with POSIX_SPAWN_SETSID (Linux, macOS 10.15+; a spawn that finds it missing
    falls back to the ordinary path), not turned off by DEVSTACK_FAST_START=0."""
    return environ.get(OFF_VAR) != "0" and hasattr(os, "posix_spawn")


def _find_config(start: str) -> str | None:
    """config.find_config's walk: the nearest devstack.yaml here or in a parent."""
    directory = os.path.realpath(start)
    while True:
        candidate = os.path.join(directory, CONFIG_NAME)
        if os.path.isfile(candidate):
            return candidate
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent


def _take_lock(state_dir: str) -> int | None:
    """runstate.acquire's lock, when free and no earlier run left anything to clean up."""
    import fcntl

    try:
        lock = os.open(os.path.join(state_dir, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(lock)
        return None
    if any(os.path.lexists(os.path.join(state_dir, name)) for name in (RUN_FILE, RECORD_FILE)):
        os.close(lock)  # a run that did not end cleanly: runstate stops its leftovers
        return None
    return lock


def raise_fd_limit(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards `wanted`, never past the hard limit; the
    (soft, hard) limits in force afterwards (`up` does it before any spawn: services
    inherit it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass  # kept as it was; doctor warns when it is too low for the stack
    return soft, hard


def _bind_control_socket(root: str) -> socket.socket | None:
    """control.bind_socket's listening socket in its usual place (.devstack/control.sock,
    none there yet), without control's imports (asyncio); None in any other case, which
    the ordinary path handles (a short path elsewhere, a stale socket, an error)."""
    import socket

    from devstack.runtime import platform

    path = os.path.join(root, ".devstack", SOCKET_NAME)
    too_long = len(os.fsencode(path)) > platform.current().socket_path_limit
    if too_long or os.path.lexists(path):
        return None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(path)
        os.chmod(path, 0o600)  # the 0700 directory already keeps others out meanwhile
        listener.listen(128)
        listener.setblocking(False)
        _write_private(os.path.join(root, ".devstack", PATH_RECORD), f"{SOCKET_NAME}\n")
    except OSError:
        listener.close()
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None
    return listener


def _write_private(path: str, text: str) -> None:
    """files.write_atomically's, without pathlib: 0600, all or nothing."""
    temporary = f"{path}.{os.getpid()}.tmp"
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(temporary, flags, 0o600), "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _spawn_all(early: Early, services: list[Planned], environ: Mapping[str, str]) -> None:
    import signal

    from devstack.runtime.platform import close_inherited_on_exec

    close_inherited_on_exec()
    here = os.getcwd()
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        for service in services:
            values = service.environment(environ)
            if values is None:
                continue  # cannot be: the shell's digest matched; the supervisor spawns it
            env = spawn_env(
                values,
                run_id=early.run_id,
                name=service.name,
                colour=early.colour,
                repo=os.path.dirname(early.config_path),
                cwd=service.cwd,
            )
            program = _which(service.argv[0], service.cwd, env.get("PATH", os.defpath))
            if program is None:
                continue  # the supervisor spawns it and says why it cannot
            defaults = (signal.SIGPIPE, signal.SIGXFSZ)
            child = _spawn(program, service.argv, service.cwd, env, devnull, defaults)
            if child is not None:
                early.children[service.name] = child
    finally:
        os.close(devnull)
        os.chdir(here)


def _spawn(
    program: str,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    devnull: int,
    defaults: tuple[int, ...],
) -> Child | None:
    out_read, out_write = os.pipe()
    err_read, err_write = os.pipe()
    try:
        # posix_spawn has no chdir: the cwd is changed around it (no thread runs yet)
        os.chdir(cwd)
        pid = os.posix_spawn(
            program,
            argv,
            env,
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, out_write, 1),
                (os.POSIX_SPAWN_DUP2, err_write, 2),
            ],
            setsid=True,
            setsigdef=defaults,
        )
    except OSError:
        os.close(out_read)
        os.close(err_read)
        return None  # the supervisor tries again and says why it cannot
    finally:
        os.close(out_write)
        os.close(err_write)
    return Child(pid, out_read, err_read, argv, cwd, env)


def _which(command: str, cwd: str, path: str) -> str | None:
    """The program execvpe would run for `command` with `path` (the service's PATH)."""
    if "/" in command:
        candidate = os.path.join(cwd, command)
        return candidate if os.access(candidate, os.X_OK) else None
    for directory in path.split(os.pathsep):
        candidate = os.path.join(os.path.join(cwd, directory) if directory else cwd, command)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None
