"""`devstack up`'s own process: it has a child check the run, then claims the repo,
starts the guardian, becomes a subreaper, spawns and supervises until the stack ends.

The checks (devstack.yaml, the env files, the doctor) run in a short-lived child
(runtime/checker.py), so that this process, which runs for hours beside the services,
never imports the config code, yaml or argparse (issue 16: idle, the tool's own
processes below foreman's). A plain `devstack up` with a kept plan has spawned its
first services before even that (runtime/firstwave.py, `early`); a first `up` spawns
those that wait for nothing as soon as the checked run arrives, before asyncio and the
supervisor are imported.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # typing's import, before a first `up`'s first spawn (issue 16)
if TYPE_CHECKING:
    import asyncio
    import socket
    from collections.abc import Callable, Coroutine, Mapping
    from types import ModuleType
    from typing import Any, BinaryIO

    from devstack.core.model import Project
    from devstack.runtime.checker import Checked, UpCheck, UpOptions
    from devstack.runtime.firstwave import Early
    from devstack.runtime.membership import RunCgroup
    from devstack.runtime.supervisor import Supervisor
    from devstack.ui.foreground import HeldTerminal


def main(checks: tuple[int, int] | None, argv: list[str], early: Early | None) -> int:
    """`devstack ARGV` (an `up`): its exit status. `checks`: the forked child checking
    the run (its pid and pipe, devstack.cli.fork_checks), or None for a fresh one;
    `early`: what the kept plan started."""
    from devstack.runtime.checker import NotChecked, UpCheck
    from devstack.runtime.lean import one_malloc_arena

    one_malloc_arena()  # before the first thread (runtime/lean.py)
    try:
        check = UpCheck(*checks) if checks is not None else UpCheck.spawned(argv)
        _import_for_the_checked_run()  # meanwhile, on another core
        outcome = check.outcome()
        if isinstance(outcome, NotChecked):
            if outcome.checks_failed:  # the child said why; what was started is stopped
                print(f"devstack up: {_stopped_early(early)}", file=sys.stderr)
            return outcome.status
        return run(outcome, early, check)
    finally:
        if early is not None:
            early.close()  # what the supervisor did not adopt (safe after _run_stack's own)


def _import_for_the_checked_run() -> None:
    """What reading the checked run imports (the env's classes), while the child checks
    it: this process has nothing else to do. Not asyncio and the supervisor: the first
    services are spawned before those are imported, as soon as the checks pass. The
    env's data, not the code that resolves it (core/envmodel.py)."""
    import devstack.core.envmodel  # noqa: F401


def run(checked: Checked, early: Early | None, check: UpCheck) -> int:
    """Start the checked run and supervise it to its end (or, for `up -d`, start it in
    the background and report)."""
    options = checked.options
    early = _spawn_first_wave(checked, early)
    check.wait()  # it kept the plan meanwhile
    held = _terminal_for_the_ui(options) if options.ui else None
    if options.detach and options.ready_fd is None:
        from devstack.runtime import detach

        return detach.start_in_background(checked.project, checked.names, options)
    return _run_stack(checked, early, held, _stream(checked.project, options, held))


def _spawn_first_wave(checked: Checked, early: Early | None) -> Early | None:
    """Spawn the services that wait for nothing now, once the checks passed and before
    the supervisor and what it imports (asyncio, the policy): on a first `up` (no
    kept plan, or one an edit invalidated) all of them, after a fast start those the
    plan left out (a shell value or a secret is never written to it). The supervisor
    adopts them as it adopts the plan's (runtime/adopt.py). The Early that holds
    them, or None: the ordinary path spawns everything."""
    import os

    from devstack.runtime import adopt, firstwave

    project, env, names = checked.project, checked.env, list(checked.names)
    options = checked.options
    # The UI holds the terminal, `-d` logs to a file, DEVSTACK_FAST_START=0: the
    # ordinary path.
    if options.ui or options.detach or options.ready_fd is not None:
        return early
    if not firstwave.supported(os.environ):
        return early
    if early is not None:
        early.spawn_more(
            adopt.planned(project, env, names, skip=list(early.children)), os.environ, names
        )
        return early
    services = adopt.planned(project, env, names)
    if not services:
        return None
    from devstack.core.logfmt import should_colour
    from devstack.runtime.runstate import prepare_state_dir

    prepare_state_dir(project.root)  # what runstate.acquire does first, and says the same
    colour = should_colour(sys.stdout.isatty(), os.environ)
    early = firstwave.claim(str(project.config_path), colour, "started before this check")
    if early is None:
        return None  # held by another `up`, or a dead run's leftovers to stop first
    try:
        # No leftovers hold a port now (claim found none): the ports are checked
        # before the spawn, as on the ordinary path after runstate.acquire.
        _check_ports(project, names)
    except BaseException:
        early.close()
        raise
    spawned = early.spawn(
        services, os.environ, names=names, fd_limit=checked.fd_limit, timestamps=options.timestamps
    )
    return early if spawned else None


def _terminal_for_the_ui(options: UpOptions) -> HeldTerminal:
    """`up --ui`: the terminal, held for the UI while it runs."""
    import sys

    from devstack.core.errors import DevstackError
    from devstack.ui.foreground import HeldTerminal

    if options.detach:
        raise DevstackError.single("choose -d or --ui", hint="`devstack ui` opens on a -d stack")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise DevstackError.single("devstack up --ui needs a terminal")
    return HeldTerminal(sys.stdout.buffer)


def _stream(project: Project, options: UpOptions, held: HeldTerminal | None) -> BinaryIO:
    """Where `up` prints: the terminal (held back while `--ui` shows the UI), or up.log
    for the background `up` of `-d`."""
    import sys

    if held is not None:
        return held  # type: ignore[return-value]  # write and flush: all Output needs
    if options.ready_fd is None:
        return sys.stdout.buffer
    from devstack.runtime import detach

    detach.claim_ready_fd(options.ready_fd)
    return detach.log_stream(project.state_dir)


def _run_stack(
    checked: Checked, early: Early | None, held: HeldTerminal | None, stream: BinaryIO
) -> int:
    import os

    from devstack.runtime import lean

    lean.import_asyncio()  # before any module imports it: ssl stays out of `up` (lean.py)
    import asyncio

    from devstack.core import logfiles
    from devstack.core.logfmt import should_colour
    from devstack.runtime import adopt, membership, runstate
    from devstack.runtime.guardian import start_guardian
    from devstack.runtime.output import Output
    from devstack.runtime.reaper import become_subreaper
    from devstack.runtime.supervisor import Supervisor

    project, names, options = checked.project, list(checked.names), checked.options
    colour = should_colour(sys.stdout.isatty(), os.environ)
    if early is None:  # else the fast start raised it before its first spawn
        raise_fd_limit(checked.fd_limit)
    lock = early.give_lock() if early is not None else None
    try:
        with runstate.acquire(project, held=lock) as run:
            # After acquire: a killed run's leftovers, which may hold the ports, are gone.
            _check_ports(project, names, early)
            if early is None:  # else the fast start did these before its first spawn
                start_guardian(run.run_id, project.state_dir)
                become_subreaper()
                # After the guardian (which must not be in it), before the first spawn.
                cgroup = membership.RunCgroup.create(run.run_id)
            else:
                cgroup = early.take_cgroup()
            membership.write_record(project.state_dir, run.run_id, cgroup, {})
            # The Output the first wave's lines already went through, if any.
            shown = early.hand_over() if early is not None else None
            output = shown or Output(
                names,
                stream=stream,
                color=colour,
                timestamps=options.timestamps,
                log_dir=logfiles.log_dir(project.root),
            )
            try:
                supervisor = Supervisor(
                    project,
                    checked.env,
                    names,
                    output=output,
                    run_id=run.run_id,
                    colour=colour,
                    abort_on_exit=options.abort_on_exit,
                    start_new_services=not (options.names or options.filters),
                    spawn=(
                        adopt.adopting(early, run.run_id, adopt.first_wave(project, names))
                        if early is not None
                        else None
                    ),
                )
                _watch_children_with_pidfds()
                status = asyncio.run(
                    _supervise(
                        supervisor,
                        project,
                        checked.overrides,
                        checked.warnings,
                        cgroup,
                        options.ready_fd,
                        held,
                        early.pending_signals if early is not None else None,
                        early.take_listener() if early is not None else None,
                    )
                )
                membership.remove_record(project.state_dir)  # swept: nothing left to find
                return status
            finally:
                output.close()
                if cgroup is not None:
                    cgroup.leave_and_remove()
    finally:
        if early is not None:
            early.close()  # any child never adopted (a shutdown came first)


SWEEP_GRACE = 2.0  # seconds a process the services left behind gets between SIGTERM and SIGKILL


def raise_fd_limit(wanted: int) -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE towards `wanted` (doctor.FD_LIMIT), never past the
    hard limit; the (soft, hard) limits in force afterwards."""
    from devstack.runtime import firstwave  # which does it before its first spawn too

    return firstwave.raise_fd_limit(wanted)


def _check_ports(project: Project, names: list[str], early: Early | None = None) -> None:
    """A chosen service's port taken by another process stops `up` before anything
    starts, as doctor reports it (issue 11 §5: `up` used to start the rest and
    blame a dependent)."""
    from devstack.core.scripts import service_ports

    wanted = [
        (name, port)
        for name in names
        for port in service_ports(project.services[name].port, project.services[name].cmd)
    ]  # `-p N` too (issue 12 item 6)
    if not wanted:
        return  # and no socket module to import before the first spawn
    from devstack.core.errors import EXIT_FAILURE, DevstackError, Problem
    from devstack.runtime import ports

    problems = []
    for name, port in wanted:
        service = project.services[name]
        if holder := ports.port_holder(port):
            problems.append(
                Problem(
                    f"{name}: port {port} is in use by {holder}",
                    service.location,
                    "stop that process, or change `port`"
                    if port == service.port
                    else "stop that process, or change the port in `cmd`",
                    code="port-in-use",
                )
            )
    if problems:
        # What the fast start spawned (no port of its own) is stopped again.
        note = _stopped_early(early)
        raise DevstackError(problems, EXIT_FAILURE, notes=[f"devstack up: {note}"])


def _stopped_early(early: Early | None) -> str:
    """Stop what was spawned before a check that now fails; what to say of it."""
    stopped = ", ".join(early.abandon()) if early is not None else ""
    return f"stopped {stopped} ({early.origin})" if early and stopped else "nothing started"


def _watch_children_with_pidfds() -> None:
    """On Python 3.11, learn of service exits through pidfds, as 3.12 does by default.

    3.11's default watcher starts a thread per child and waits until it runs: 0.3 to
    0.7 ms of each service's spawn, 15-30 ms for 50 services. asyncio.run
    attaches the watcher to its loop and detaches it at the end.
    """
    import asyncio
    import os
    import sys
    import warnings

    from devstack.runtime import platform

    # DEVSTACK_PORTABLE=1: the thread per child, as on macOS.
    if sys.version_info >= (3, 12) or not platform.current().procfs:
        return
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return  # kernel before 5.3, or pidfds refused (seccomp): keep the threads
    asyncio.set_child_watcher(asyncio.PidfdChildWatcher())
    # Detaching it while a process survived even SIGKILL (stuck in the kernel) warns;
    # the supervisor has already said so in words.
    warnings.filterwarnings("ignore", "A loop is being detached", RuntimeWarning)


async def _supervise(
    supervisor: Supervisor,
    project: Project,
    overrides: Mapping[str, str],
    warnings: tuple[str, ...],
    cgroup: RunCgroup | None,
    ready_fd: int | None = None,
    held: HeldTerminal | None = None,
    pending_signals: Callable[[], list[int]] | None = None,
    listener: socket.socket | None = None,
) -> int:
    """The supervisor, with the control socket, the file watcher and the `r` key beside it.

    The control socket is bound before anything starts: a client may ask as soon as a
    service has printed. The watcher and the key reader are imported (in a thread) and
    started only once the first services are spawned: importing them on the loop first
    held the services' first lines up by tens of milliseconds, and nothing they do is
    needed before (the watcher says when it is watching). `pending_signals`: the
    shutdown signals the fast start kept for the supervisor; `listener`: the control
    socket it bound.
    """
    import asyncio
    import os

    from devstack.runtime import control, reaper

    # Bound before anything starts: a stack nobody can control must not run (issue 11 §2).
    # (The fast start bound it before its first spawn: `listener`.)
    if listener is None:
        listener = control.bind_socket(project.root, os.environ, os.getuid())
    # As a subreaper, devstack adopts what services orphan: it must reap them too.
    stop_reaping = reaper.install_orphan_reaper(asyncio.get_running_loop())
    tasks: list[asyncio.Task[None]] = []

    def start(companion: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(companion)
        task.add_done_callback(lambda task: _report_crash(supervisor, task))
        tasks.append(task)

    start(control.serve(supervisor, project=project, listener=listener))
    if held is not None:  # `up --ui`: the socket is already bound, the UI can connect
        from devstack.ui.foreground import run_ui

        start(run_ui(supervisor, project.config_path, held))
    # What shows the stop to the end (the sweep says what it stopped); the others, the
    # watcher above all, end before the sweep: a child of devstack's own that the watcher
    # is waiting for (compiling rules, checking a reload) ends with it, never taken for
    # something a service left running.
    showing = tasks[:]
    start(_start_after_first_spawns(supervisor, overrides, warnings, start, keys=held is None))
    start(_keep_record(supervisor, project, cgroup))
    if ready_fd is not None:  # the background `up` of `up -d`: tell the waiting parent
        from devstack.runtime import detach

        timeout = detach.ready_timeout(project, [status.name for status in supervisor.status()])
        start(detach.report_when_settled(supervisor, ready_fd, timeout))
    if pending_signals is not None:
        start(_handle_kept_signals(supervisor, pending_signals))
    try:
        status = await supervisor.run()
        ending = [task for task in tasks if task not in showing]
        for task in ending:
            task.cancel()
        await asyncio.gather(*ending, return_exceptions=True)
        await _sweep(supervisor, cgroup)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        stop_reaping()
    # A companion that crashed (reported by _report_crash) is an internal error too.
    crashed = any(not t.cancelled() and t.exception() is not None for t in tasks)
    return status or (1 if crashed else 0)


async def _handle_kept_signals(
    supervisor: Supervisor, pending_signals: Callable[[], list[int]]
) -> None:
    """Ctrl+C (or SIGTERM, SIGHUP) that came while the fast start's services ran and
    devstack was still starting: handled once they are adopted, as a Ctrl+C after the
    start is (their stop signal and stop_timeout, each said). supervisor.run's own
    handlers took over from the fast start's before this runs."""
    await supervisor.first_spawns_done.wait()
    for signum in pending_signals():
        supervisor.request_shutdown(signum)


async def _keep_record(supervisor: Supervisor, project: Project, cgroup: RunCgroup | None) -> None:
    """Look at the processes below devstack every CENSUS_INTERVAL seconds (no event
    says a process was orphaned): which service each came from, for a restart, and
    the record the guardian and the next `up` read."""
    import asyncio

    from devstack.runtime import membership

    census = membership.CENSUS
    while True:
        mains = {row.pid: row.name for row in supervisor.status() if row.pid}
        if await asyncio.to_thread(census.take, mains, _own_helpers()):
            await asyncio.to_thread(
                membership.write_record,
                project.state_dir,
                supervisor.run_id,
                cgroup,
                census.members,
            )
        await asyncio.sleep(membership.CENSUS_INTERVAL)


async def _sweep(supervisor: Supervisor, cgroup: RunCgroup | None) -> None:
    """Once every service has stopped: end whatever they left running that hid from
    their stop (left its session and cleared its environment, issue 11 §3), found by
    ancestry and in the cgroup."""
    import asyncio

    from devstack.runtime import membership, reaper

    left = await asyncio.to_thread(membership.members_now, cgroup, _own_helpers())
    if not left:
        return
    described = reaper.describe(left)  # before they are gone, their command lines with them
    survivors = await asyncio.to_thread(reaper.terminate, left, SWEEP_GRACE)
    message = f"stopped {described}, left running by the services"
    if survivors:
        message += f"; could not stop {reaper.describe(survivors)}"
    supervisor.say(message, "warn")


def _own_helpers() -> set[int]:
    """devstack's own children, which are no service's: the guardian, and the children
    checking a reload or compiling the watcher's rules."""
    from devstack.runtime.checker import helper_pids
    from devstack.runtime.guardian import guardian_pids

    return guardian_pids() | helper_pids()


async def _start_after_first_spawns(
    supervisor: Supervisor,
    overrides: Mapping[str, str],
    warnings: tuple[str, ...],
    start: Callable[[Coroutine[Any, Any, None]], None],
    *,
    keys: bool = True,
) -> None:
    """Start the file watcher, and the key reader on a terminal, once the services that
    could start at once are spawned. `warnings`: what the checks said, which a reload
    does not say again."""
    import asyncio
    import os
    import sys

    from devstack.runtime import lean

    await supervisor.first_spawns_done.wait()
    # In a thread: the loop keeps passing the services' output on meanwhile.
    interactive = keys and sys.stdin.isatty()  # under `--ui` the UI reads the keys
    watcher, reader = await asyncio.to_thread(_import_companions, interactive)
    if supervisor.shutting_down:  # Ctrl+C came first: "watching for changes" would be odd
        return
    watching = asyncio.Event()
    start(
        watcher.watch_project(
            supervisor, shell=os.environ, cli_env=overrides, set_up=watching, shown=warnings
        )
    )
    if reader is not None:
        start(reader.read_keys(supervisor))
    await asyncio.gather(supervisor.settled(), watching.wait())
    lean.release_freed_memory()  # what the start freed goes back to the system (issue 16)


def _import_companions(interactive: bool) -> tuple[ModuleType, ModuleType | None]:
    """The watcher's and the key reader's modules, and watchfiles' Rust part, which the
    watcher imports on the loop when it starts watching."""
    import importlib

    watcher = importlib.import_module("devstack.runtime.watcher")
    importlib.import_module("devstack.runtime.notify").preload()
    keys = importlib.import_module("devstack.runtime.keys") if interactive else None
    return watcher, keys


def _report_crash(supervisor: Supervisor, task: asyncio.Task[None]) -> None:
    """A companion that fails must say so: the stack keeps running without it."""
    import traceback

    if task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    text = "".join(traceback.format_exception(error)).rstrip()
    supervisor.say(f"internal error, {_name_of(task)} stopped:\n{text}", "error")


def _name_of(task: asyncio.Task[None]) -> str:
    return getattr(task.get_coro(), "__name__", task.get_name())
