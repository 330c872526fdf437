"""The checks `up` makes before it starts anything, and before it applies a reload, made
in a short-lived process of their own (issue 16: idle, the tool's own processes below
foreman's).

Reading devstack.yaml and the env files, resolving each service's environment and
running the doctor take yaml, the config and env code, the doctor and argparse: ~2 MiB
the long-lived `up` would keep for hours and never use again (Python never unloads a
module: tried, nothing came back). So `up` has a child do them, and gets the outcome
back as data:

- `UpCheck`: `devstack up ARGS` as the command line gave it, checked by a child: forked
  on a first `up` (devstack.cli.fork_checks), a fresh interpreter once the fast start
  (runtime/firstwave.py) has spawned the kept plan's services. The child parses the
  arguments, prints help, usage errors, the doctor's problems and warnings itself, as
  `up` always did, and hands over a `Checked` run (the project, every service's
  environment with its provenance, the chosen services, the options) or `NotChecked`.
  After the hand-over it writes the kept plan (runtime/adopt.py) while `up` spawns.
- `recheck`: devstack.yaml or an env file changed under a running stack. A fresh
  interpreter (a fork of the running loop could copy a lock another thread holds)
  checks the new config for the services of the run (`ReloadSelection`) and answers
  `Reloaded` (with the services' watch globs compiled) or `Rejected`, its problems as
  text for the watcher to say.
- `compile_rules`: the watcher's rules (core/routing.py `WatchRules`: watch globs and
  .gitignore files), compiled by pathspec in a fresh interpreter, when the watcher
  starts and when a .gitignore changes; `up` only matches them (core/globs.py).

The outcome travels pickled, through a pipe only the two processes hold: the same
user's own code at both ends (pickle runs what it reads, so it reads nothing else).
Every read has a bound (OUTCOME_LIMIT), and so has the wait for a reload's child.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

TYPE_CHECKING = False  # typing's import, before a first `up`'s first spawn (issue 16)
if TYPE_CHECKING:
    import asyncio.subprocess
    from collections.abc import Mapping
    from pathlib import Path
    from types import ModuleType

    from devstack.core.envmodel import ProjectEnv
    from devstack.core.graph import ReloadSelection
    from devstack.core.model import Project
    from devstack.core.routing import ServiceWatch, WatchRules

OUTCOME_LIMIT = 256 * 2**20  # bytes: a run's data is ~10 KB per service
RELOAD_TIMEOUT = 60.0  # seconds a reload's check may take (an env file on a stuck mount)
RULES_TIMEOUT = 60.0  # seconds compiling the watch rules may take (a huge repo to walk)
PLAN_TIMEOUT = 10.0  # seconds the child may take to write the kept plan after the hand-over
# As the guardian's Python: `-S`, no site (the import path is passed: ~10 ms less to
# start); `-I`, no working directory on the path (a yaml.py there would shadow PyYAML)
# and no PYTHON* variables (they are passed to the services, not read here).
# The entry is the CLI's (`up FD ARGV...`, `reload` or `rules`), which imports this module.
_BOOT = (
    f"import sys; sys.path[:0] = sys.argv[1].split({os.pathsep!r}); "
    "from devstack.cli import checker_main; sys.exit(checker_main(sys.argv[2:]))"
)


@dataclass(frozen=True)
class UpOptions:
    """`devstack up`'s options, as its parser made them (commands/up.py)."""

    names: tuple[str, ...] = ()
    no_deps: bool = False
    excluded: tuple[str, ...] = ()
    filters: tuple[str, ...] = ()
    abort_on_exit: bool = False
    timestamps: bool = False
    detach: bool = False
    ready_fd: int | None = None
    ui: bool = False
    env_overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Checked:
    """A run that passed `up`'s checks: what the long-lived `up` starts."""

    project: Project
    env: ProjectEnv
    names: tuple[str, ...]  # the chosen services and what they depend on, in order
    overrides: Mapping[str, str]  # --env NAME=value
    options: UpOptions
    warnings: tuple[str, ...]  # the doctor's warnings, as printed
    fd_limit: int  # the RLIMIT_NOFILE the services get (doctor.FD_LIMIT)


@dataclass(frozen=True)
class NotChecked:
    """`up` ends here with `status`: help printed, a usage error, a failed check (the
    child said so). `checks_failed`: the doctor or the env said no, and `up` says what
    it stopped of what it had started (`devstack up: nothing started`)."""

    status: int
    checks_failed: bool = False


@dataclass(frozen=True)
class ReloadRequest:
    config_path: Path
    project: Project | None  # the config as it is, when only env files changed
    shell: Mapping[str, str]
    cli_env: Mapping[str, str]
    selection: ReloadSelection


@dataclass(frozen=True)
class Reloaded:
    project: Project
    env: ProjectEnv
    warnings: tuple[str, ...]  # the doctor's warnings, rendered
    watches: tuple[ServiceWatch, ...]  # the new config's watch globs, compiled


@dataclass(frozen=True)
class Rejected:
    problems: tuple[str, ...]  # rendered, for the watcher to say


# -- the long-lived `up`'s side ---------------------------------------------------------


class UpCheck:
    """The child checking `devstack up ARGS`, its `pid`, handing over on `read_end`'s
    pipe; `outcome()` waits for its answer. The answer is length-prefixed; the pipe's
    end (EOF) then says the child exited.

    On a first `up` it is forked first thing (devstack.cli.fork_checks): its Python and
    imports are not paid twice (~100 ms of CPU), and `up` waits for it anyway. After a
    fast start (`spawned`), a fresh interpreter: the fork would copy a process with the
    line pump's thread running, and a fork before the plan's spawns held them up by
    10-20 ms (the CPU it takes, and the copy-on-write faults of every page `up` then
    writes)."""

    def __init__(self, pid: int, read_end: int) -> None:
        self._pid = pid
        self._read_end = read_end
        self._status: int | None = None

    @classmethod
    def spawned(cls, argv: list[str]) -> UpCheck:
        """A fresh interpreter checking `devstack ARGV`."""
        read_end, write_end = os.pipe()
        try:
            os.set_inheritable(write_end, True)
            child = child_argv("up", str(write_end), *argv)
            pid = os.posix_spawn(child[0], child, os.environ)
        except BaseException:
            os.close(read_end)
            raise
        finally:
            os.close(write_end)
        return cls(pid, read_end)

    def outcome(self) -> Checked | NotChecked:
        """The run, or how `up` ends; on Ctrl+C the child (which had it too) is ended."""
        try:
            header = _read_exactly(self._read_end, 8)
            if len(header) < 8:  # help printed, a usage error, or the child died
                return NotChecked(self._reap())
            size = int.from_bytes(header, "big")
            data = _read_exactly(self._read_end, size) if size <= OUTCOME_LIMIT else b""
            outcome = _loads(data) if len(data) == size else None
            if isinstance(outcome, NotChecked):
                self._reap()  # it says why before it exits
            if isinstance(outcome, Checked | NotChecked):
                return outcome
        except BaseException:
            self.end()
            raise
        self.end()
        from devstack.core.errors import DevstackError

        raise DevstackError.single(
            f"internal error: the checks of `up` answered {size} bytes, not a checked run"
            + (f" (over the {OUTCOME_LIMIT >> 20} MiB bound)" if size > OUTCOME_LIMIT else "")
        )

    def wait(self) -> None:
        """Reap the child once it wrote the plan (ended if it takes too long)."""
        import select

        if self._status is None:
            exited, _, _ = select.select([self._read_end], [], [], PLAN_TIMEOUT)
            if not exited:
                self.end()
            self._reap()
        os.close(self._read_end)

    def end(self) -> None:
        if self._status is None:
            import signal

            os.kill(self._pid, signal.SIGKILL)
            self._reap()

    def _reap(self) -> int:
        if self._status is None:
            self._status = os.waitstatus_to_exitcode(os.waitpid(self._pid, 0)[1])
        return _exit_status(self._status)


def _read_exactly(fd: int, size: int) -> bytes:
    """`size` bytes, or fewer if the pipe ends first."""
    chunks, left = [], size
    while left and (chunk := os.read(fd, min(left, 1 << 20))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


async def recheck(request: ReloadRequest) -> Reloaded | Rejected:
    """The outcome of checking a reload in a child (on the loop: it waits, never blocks)."""
    outcome = await _ask_child("reload", request, RELOAD_TIMEOUT, "checking the new config")
    if isinstance(outcome, Reloaded | Rejected):
        return outcome
    return Rejected((outcome if isinstance(outcome, str) else "no answer checking the new config",))


async def compile_rules(project: Project) -> WatchRules | str:
    """The watcher's rules for `project`, compiled in a child; or what went wrong."""
    from devstack.core.routing import WatchRules  # the watcher's, imported already

    outcome = await _ask_child("rules", project, RULES_TIMEOUT, "compiling the watch rules")
    return outcome if isinstance(outcome, WatchRules | str) else "no rules compiled"


_helpers: set[int] = set()  # the children below that run now


def helper_pids() -> set[int]:
    """Children of `up` checking a reload or compiling rules right now: devstack's own,
    which the sweeps for what the services left behind leave alone (a shutdown ends them
    through the task that waits for them)."""
    return set(_helpers)


async def _ask_child(command: str, request: object, timeout: float, doing: str) -> object:
    """A fresh interpreter's answer to `request` (`command`: what it does with it), or
    what went wrong, as text: `checking the new config took over 60 s`, or `internal
    error checking the new config (status 1)` and the end of what the child said."""
    import asyncio

    from devstack.runtime import reaper

    process = await asyncio.create_subprocess_exec(
        *child_argv(command),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,  # Ctrl+C is the stack's to handle, not the child's
    )
    reaper.note_live(process.pid)  # its exit is asyncio's to collect, not the orphan reaper's
    _helpers.add(process.pid)
    try:
        data, errors = await asyncio.wait_for(
            _exchange(process, _pickler().dumps(request)), timeout
        )
    except TimeoutError:
        process.kill()
        await process.communicate()  # what the pipes still hold: then they close
        return f"{doing} took over {timeout:.0f} s"
    except asyncio.CancelledError:  # the stack stops: the child ends with it, now
        if process.returncode is None:
            process.kill()
        await process.wait()
        raise
    finally:
        _helpers.discard(process.pid)
        reaper.forget_live(process.pid)
    if process.returncode == 0 and data and (outcome := _loads(data)) is not None:
        return outcome
    said = errors.decode(errors="replace").strip()[-2000:]
    return f"internal error {doing} (status {process.returncode})\n{said}"


async def _exchange(process: asyncio.subprocess.Process, request: bytes) -> tuple[bytes, bytes]:
    """Write the request, read the answer and what the child said, each to its end."""
    import asyncio

    assert process.stdin and process.stdout and process.stderr
    try:
        process.stdin.write(request)
        await process.stdin.drain()
    except ConnectionError:  # it ended before it read the request: its status says how
        pass
    process.stdin.close()
    data, errors = await asyncio.gather(
        _read_to_end(process.stdout, OUTCOME_LIMIT + 1), _read_to_end(process.stderr, 64 * 1024)
    )
    await process.wait()
    return data, errors


async def _read_to_end(stream: asyncio.StreamReader, limit: int) -> bytes:
    """Everything until EOF, the first `limit` bytes kept (the rest read and dropped,
    so that the child is never stuck writing)."""
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk[: max(0, limit - len(kept))]
    return bytes(kept)


def child_argv(*args: str) -> list[str]:
    """A fresh interpreter that checks: `up FD ARGV...` after a fast start; `reload` and
    `rules` under a running loop (whose threads, its executor's and watchfiles', rule
    out a fork)."""
    from devstack.runtime.guardian import import_path

    return [sys.executable, "-I", "-S", "-c", _BOOT, os.pathsep.join(import_path()), *args]


def _loads(data: bytes) -> object:
    """What the child handed over; None if it is over the bound (then it is not read)."""
    return _pickler().loads(data) if len(data) <= OUTCOME_LIMIT else None


def _pickler() -> ModuleType:
    """pickle's `loads` and `dumps`, which are `_pickle`'s, CPython's C pickler: taken
    from there, `up` does not keep pickle.py's pure-Python pickler and unpickler (~0.14
    MiB of code) for the few calls it makes (as runtime/lean.py takes its hashes)."""
    try:
        import _pickle

        return _pickle
    except ImportError:  # pragma: no cover - a Python without the C pickler
        import pickle

        return pickle


def _exit_status(returncode: int) -> int:
    """A child's exit status as a shell shows it: 128 + N when signal N ended it."""
    return 128 - returncode if returncode < 0 else returncode


# -- the child's side -----------------------------------------------------------------


def answer_main(command: str) -> int:
    """`reload` or `rules`: the request on stdin, the answer on stdout."""
    import pickle

    request = pickle.loads(sys.stdin.buffer.read(OUTCOME_LIMIT))
    if command == "rules":
        from devstack.core.routing import compile_rules as compiled

        answer: object = compiled(request)
    else:
        answer = check_reload(request)
    sys.stdout.buffer.write(pickle.dumps(answer))
    return 0


def hand_over(fd: int, outcome: Checked | NotChecked) -> None:
    """Write `outcome` for the waiting `up` (commands/up.py, in the child): its length,
    then it. The pipe stays open until this process exits: `UpCheck.wait` waits so."""
    import pickle

    pickled = pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    data = memoryview(len(pickled).to_bytes(8, "big") + pickled)
    while data:
        data = data[os.write(fd, data) :]


def check_reload(request: ReloadRequest) -> Reloaded | Rejected:
    """The new config and env, checked as `up` checks them (in the child)."""
    from devstack.core.config import load_project
    from devstack.core.envresolve import resolve_project
    from devstack.core.errors import DevstackError
    from devstack.core.preflight import check_run
    from devstack.core.routing import compile_rules as compiled

    try:
        project = request.project or load_project(request.config_path)
    except DevstackError as error:
        return Rejected(tuple(problem.render() for problem in error.problems))
    env = resolve_project(project, request.shell, request.cli_env)
    autostart = {name: service.autostart for name, service in project.services.items()}
    verdict = check_run(project, env, request.selection.of(autostart))
    if not verdict.usable:
        return Rejected(tuple(p.render() for p in (*verdict.env_errors, *verdict.errors)))
    warnings = tuple(problem.render() for problem in verdict.warnings)
    return Reloaded(project, env, warnings, compiled(project, gitignores=False).watches)
