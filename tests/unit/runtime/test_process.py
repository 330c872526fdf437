"""Service processes, the orphan reaper and the guardian, with real processes and signals.

Each test marks what it starts with a fresh run id and proves, at the end, that no
process carrying it (or started by this test process) is left.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import psutil
import pytest

from devstack.runtime import guardian, reaper
from devstack.runtime.process import ServiceProcess
from tests.support import wait_until

PY = sys.executable
TIMEOUT = 30.0
T = TypeVar("T")


class FakeOutput:
    """Collects what a process feeds, per stream; lets a test await what it expects."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, str], bytearray] = {}
        self.ended: list[tuple[str, str]] = []
        self.starts: list[tuple[str, int]] = []
        self.fed_before_start = False
        self._changed = asyncio.Event()

    def started(self, name: str, pid: int) -> None:
        self.starts.append((name, pid))

    def feed(self, name: str, stream: str, data: bytes) -> None:
        # The log file's start separator must precede the first line of output.
        self.fed_before_start |= name not in (started for started, _ in self.starts)
        self.data.setdefault((name, stream), bytearray()).extend(data)
        self._changed.set()

    def end_stream(self, name: str, stream: str) -> None:
        self.ended.append((name, stream))
        self._changed.set()

    def text(self, name: str = "svc", stream: str = "out") -> str:
        return bytes(self.data.get((name, stream), b"")).decode()

    async def until(self, predicate: Callable[[], bool]) -> None:
        async with asyncio.timeout(TIMEOUT):
            while not predicate():
                self._changed.clear()
                await self._changed.wait()


@pytest.fixture
def run_id() -> Iterator[str]:
    """A fresh run id; afterwards, nothing marked with it (or our child) may be alive."""
    run_id = f"test-{uuid.uuid4().hex[:12]}"
    yield run_id
    assert_nothing_left(run_id)


def assert_nothing_left(run_id: str) -> None:
    left = reaper.marked_processes(run_ids={run_id})
    left += [
        child
        for child in psutil.Process().children(recursive=True)
        if child.status() != psutil.STATUS_ZOMBIE and child not in left
    ]
    if left:
        described = reaper.describe(left, limit=10)
        reaper.send(left, signal.SIGKILL)
        raise AssertionError(f"processes left behind: {described}")


def run(coroutine: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(TIMEOUT):
            return await coroutine()

    return asyncio.run(bounded())


async def spawn(
    output: FakeOutput, run_id: str, script: str, *, tty: bool = False, cwd: Path | None = None
) -> ServiceProcess:
    env = dict(os.environ, DEVSTACK_RUN_ID=run_id, DEVSTACK_SERVICE="svc", PYTHONUNBUFFERED="1")
    return await ServiceProcess.spawn(
        name="svc",
        argv=[PY, "-c", textwrap.dedent(script)],
        cwd=cwd or Path.cwd(),
        env=env,
        tty=tty,
        output=output,  # type: ignore[arg-type]
    )


def test_output_of_both_streams_and_the_exit_status(run_id: str) -> None:
    async def main() -> tuple[int, int, FakeOutput]:
        output = FakeOutput()
        process = await spawn(
            output,
            run_id,
            """
            import sys
            print("hello")
            sys.stderr.write("oops\\n")
            sys.stdout.write("no newline")
            sys.exit(3)
            """,
        )
        code = await process.wait()
        assert output.starts == [("svc", process.pid)]
        return code, await process.stop(signal.SIGTERM, 5, print), output

    code, stopped, output = run(main)
    assert (code, stopped) == (3, 3)
    assert not output.fed_before_start
    assert output.text("svc", "out") == "hello\nno newline"
    assert output.text("svc", "err") == "oops\n"
    assert sorted(output.ended) == [("svc", "err"), ("svc", "out")]


def test_a_missing_command_raises_oserror(run_id: str) -> None:
    async def main() -> None:
        await ServiceProcess.spawn(
            name="svc",
            argv=["/nonexistent/command"],
            cwd=Path.cwd(),
            env={"DEVSTACK_RUN_ID": run_id},
            tty=False,
            output=FakeOutput(),  # type: ignore[arg-type]
        )

    with pytest.raises(FileNotFoundError):
        run(main)


def test_stop_sends_the_signal_to_the_whole_group(run_id: str) -> None:
    """A shell and its background children all get SIGTERM; none needs SIGKILL."""

    async def main() -> tuple[int, list[str]]:
        output = FakeOutput()
        said: list[str] = []
        env = {"PATH": os.environ["PATH"], "DEVSTACK_RUN_ID": run_id, "DEVSTACK_SERVICE": "svc"}
        process = await ServiceProcess.spawn(
            name="svc",
            argv=["sh", "-c", "sleep 300 & sleep 300 & echo started; wait"],
            cwd=Path.cwd(),
            env=env,
            tty=False,
            output=output,  # type: ignore[arg-type]
        )
        await output.until(lambda: "started" in output.text())
        assert len(psutil.Process(process.pid).children()) == 2
        return await process.stop(signal.SIGTERM, 10, said.append), said

    code, said = run(main)
    assert code == -signal.SIGTERM
    assert said == []


IGNORES_TERM = """
    import signal, subprocess, sys
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ignoring TERM", flush=True)
    signal.pause()
"""


def test_stop_escalates_to_sigkill_and_says_so(run_id: str) -> None:
    async def main() -> tuple[int, list[str]]:
        output = FakeOutput()
        said: list[str] = []
        process = await spawn(output, run_id, IGNORES_TERM)
        await output.until(lambda: "ignoring TERM" in output.text())
        return await process.stop(signal.SIGTERM, 0.3, said.append), said

    code, said = run(main)
    assert code == -signal.SIGKILL
    assert said == ["did not stop within 0.3s, sending SIGKILL"]


def test_kill_ends_it_at_once_during_a_long_stop(run_id: str) -> None:
    async def main() -> int:
        output = FakeOutput()
        process = await spawn(output, run_id, IGNORES_TERM)
        await output.until(lambda: "ignoring TERM" in output.text())
        stopping = asyncio.ensure_future(process.stop(signal.SIGTERM, 600, print))
        await asyncio.sleep(0)  # let the stop begin: kill() must cut it short
        process.kill()
        assert await process.wait() == -signal.SIGKILL
        return await stopping

    assert run(main) == -signal.SIGKILL


DOUBLE_FORK = """
    import os, signal, sys
    if os.fork() == 0:
        os.setsid()  # out of the service's session and process group
        if os.fork() == 0:  # out of its tree too, once its parent exits
            print("escaped", flush=True)
            signal.pause()
        os._exit(0)
    os.wait()
    print("forked", flush=True)
    {then}
"""


def escaped(run_id: str, process: ServiceProcess) -> list[psutil.Process]:
    """Processes carrying the run's marker outside the service's session."""
    found = []
    for proc in reaper.marked_processes(run_ids={run_id}):
        try:
            if os.getsid(proc.pid) != process.pid:
                found.append(proc)
        except ProcessLookupError:
            continue
    return found


def test_stop_kills_a_grandchild_that_left_the_group(run_id: str) -> None:
    async def main() -> tuple[psutil.Process, int]:
        output = FakeOutput()
        process = await spawn(output, run_id, DOUBLE_FORK.format(then="signal.pause()"))
        await output.until(lambda: "escaped" in output.text() and "forked" in output.text())
        [sleeper] = escaped(run_id, process)
        return sleeper, await process.stop(signal.SIGTERM, 10, print)

    sleeper, code = run(main)
    assert code == -signal.SIGTERM
    assert not sleeper.is_running() or sleeper.status() == psutil.STATUS_ZOMBIE


def test_wait_returns_when_the_main_process_ends_though_a_grandchild_holds_its_pipe(
    run_id: str,
) -> None:
    async def main() -> tuple[int, list[psutil.Process], int]:
        output = FakeOutput()
        process = await spawn(output, run_id, DOUBLE_FORK.format(then="sys.exit(0)"))
        await output.until(lambda: "escaped" in output.text())
        code = await process.wait()  # the escaped one still holds stdout open
        left = escaped(run_id, process)
        return code, left, await process.stop(signal.SIGTERM, 10, print)

    code, left, stopped = run(main)
    assert (code, stopped) == (0, 0)
    assert len(left) == 1


COUNTS_SIGINT = """
    import signal
    count = 0
    def counted(signum, frame):
        global count
        count += 1
        print(f"SIGINT {count}", flush=True)
    signal.signal(signal.SIGINT, counted)
    print("counting", flush=True)
    while True:
        signal.pause()
"""


def test_stop_signals_each_member_of_the_group_once(run_id: str) -> None:
    """A second SIGINT is "quit now" to npm and many dev servers: the group signal is
    all a member gets, though the scan for the escaped lists it too."""

    async def main() -> tuple[str, list[str]]:
        output = FakeOutput()
        said: list[str] = []
        main_script = f"""
            import signal, subprocess, sys
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            subprocess.run([sys.executable, "-c", {textwrap.dedent(COUNTS_SIGINT)!r}])
        """
        process = await spawn(output, run_id, main_script)
        await output.until(lambda: "counting\n" in output.text())
        # The main process ignores SIGINT: the stop escalates, the member stays till then.
        await process.stop(signal.SIGINT, 0.5, said.append)
        return output.text(), said

    text, said = run(main)
    assert text == "counting\nSIGINT 1\n"
    assert said == ["did not stop within 0.5s, sending SIGKILL"]


def test_tty_mode_runs_under_a_terminal_with_plain_newlines(run_id: str) -> None:
    async def main() -> tuple[int, FakeOutput]:
        output = FakeOutput()
        process = await spawn(
            output,
            run_id,
            """
            import os, sys
            print(sys.stdout.isatty(), sys.stderr.isatty(), os.get_terminal_size().columns)
            sys.stderr.write("to stderr\\n")
            """,
            tty=True,
        )
        code = await process.wait()
        await output.until(lambda: ("svc", "out") in output.ended)
        return await process.stop(signal.SIGTERM, 5, print) + code, output

    code, output = run(main)
    assert code == 0
    assert output.text() == "True True 200\nto stderr\n"


# -- the guardian ----------------------------------------------------------------------

DEVSTACK_STAND_IN = """
    import os, subprocess, sys
    from pathlib import Path
    from devstack.runtime.guardian import _held, start_guardian
    run_id, state_dir, service = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    start_guardian(run_id, state_dir)
    env = dict(os.environ, DEVSTACK_RUN_ID=run_id, DEVSTACK_SERVICE="svc")
    child = subprocess.Popen(service, env=env, start_new_session=True)
    print(_held[1].pid, child.pid, flush=True)
    sys.stdin.read()  # until the test closes stdin (a normal exit) or kills us
"""


def start_stand_in(
    run_id: str, tmp_path: Path, service: Sequence[str] = ("sleep", "300")
) -> tuple[subprocess.Popen[str], int, int]:
    """A process playing devstack: starts the guardian and one marked service."""
    stand_in = subprocess.Popen(
        [PY, "-c", textwrap.dedent(DEVSTACK_STAND_IN), run_id, str(tmp_path), *service],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert stand_in.stdout is not None
    guardian_pid, child_pid = map(int, stand_in.stdout.readline().split())
    return stand_in, guardian_pid, child_pid


def test_the_guardian_stops_the_run_when_devstack_is_sigkilled(run_id: str, tmp_path: Path) -> None:
    stand_in, guardian_pid, child_pid = start_stand_in(run_id, tmp_path)
    guardian, child = psutil.Process(guardian_pid), psutil.Process(child_pid)
    assert os.getsid(guardian_pid) != os.getsid(stand_in.pid)  # Ctrl+C does not reach it
    stand_in.kill()
    _, stderr = stand_in.communicate(timeout=TIMEOUT)  # EOF: the guardian has exited too
    assert reaper.wait_gone([child, guardian], TIMEOUT) == []
    assert f"stopped pid {child_pid} (sleep 300)" in stderr
    assert f"pid {child_pid} (sleep 300)" in (tmp_path / "guardian.log").read_text()


def test_the_guardian_kills_what_ignores_sigterm(run_id: str, tmp_path: Path) -> None:
    service = ["sh", "-c", "trap '' TERM; exec sleep 300"]
    stand_in, guardian_pid, child_pid = start_stand_in(run_id, tmp_path, service)
    guardian, child = psutil.Process(guardian_pid), psutil.Process(child_pid)
    # Once it is `sleep`, SIGTERM is ignored: the shell set the trap before exec.
    wait_until(lambda: child.cmdline() == ["sleep", "300"], what="the service's exec")
    stand_in.kill()
    _, stderr = stand_in.communicate(timeout=TIMEOUT)
    assert reaper.wait_gone([child, guardian], TIMEOUT) == []
    assert f"stopped pid {child_pid} (sleep 300)" in stderr
    assert "could not stop" not in stderr


def test_the_guardian_without_pidfds_stops_the_run_with_psutil(run_id: str, tmp_path: Path) -> None:
    env = dict(os.environ, DEVSTACK_RUN_ID=run_id)
    child = subprocess.Popen(["sleep", "300"], env=env, start_new_session=True)
    try:
        stopped, survivors = guardian._stop_marked_with_psutil(
            f"DEVSTACK_RUN_ID={run_id}", str(tmp_path)
        )
        assert child.wait(TIMEOUT) == -signal.SIGTERM
    finally:
        child.kill()
        child.wait(TIMEOUT)
    assert (stopped, survivors) == ([f"pid {child.pid} (sleep 300)"], [])


def test_the_guardian_exits_after_a_normal_exit(run_id: str, tmp_path: Path) -> None:
    stand_in, guardian_pid, child_pid = start_stand_in(run_id, tmp_path)
    guardian = psutil.Process(guardian_pid)
    psutil.Process(child_pid).kill()  # devstack stopped its services itself
    _, stderr = stand_in.communicate("", timeout=TIMEOUT)
    assert stand_in.returncode == 0
    assert reaper.wait_gone([guardian], TIMEOUT) == []
    assert stderr == ""


# -- the subreaper and the orphan reaper -----------------------------------------------

LEAVES_AN_ORPHAN = """
    import os, signal, sys
    if os.fork() == 0:  # outlives the service, which exits at once
        print("orphan", os.getpid(), flush=True)
        signal.pause()
    sys.exit(7)
"""


async def eventually(predicate: Callable[[], bool]) -> None:
    """For a condition no event announces (a zombie reaped): check with backoff."""
    delay = 0.01
    async with asyncio.timeout(TIMEOUT):
        while not predicate():
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="subreapers are Linux-only")
def test_orphans_are_adopted_and_reaped_without_stealing_service_exits(run_id: str) -> None:
    async def main() -> tuple[int, int]:
        uninstall = reaper.install_orphan_reaper(asyncio.get_running_loop(), grace=0.01)
        try:
            output = FakeOutput()
            process = await spawn(output, run_id, LEAVES_AN_ORPHAN)
            await output.until(lambda: output.text().endswith("\n"))
            orphan = psutil.Process(int(output.text().split()[1]))
            code = await process.wait()
            await eventually(lambda: orphan.ppid() == os.getpid())
            orphan.kill()  # now a zombie of ours, unknown to asyncio
            await eventually(lambda: not psutil.pid_exists(orphan.pid))
            return code, await process.stop(signal.SIGTERM, 5, print)
        finally:
            uninstall()

    assert reaper.become_subreaper()
    try:
        assert reaper.is_subreaper()
        assert run(main) == (7, 7)
    finally:
        reaper.become_subreaper(False)
    assert not reaper.is_subreaper()


# -- stopping as a subreaper, which knows without a scan when nothing is left ----------


@pytest.fixture
def subreaper() -> Iterator[None]:
    """This test process as devstack is: a child subreaper."""
    if not sys.platform.startswith("linux"):
        pytest.skip("subreapers are Linux-only")
    assert reaper.become_subreaper()
    yield
    reaper.become_subreaper(False)


async def spawn_argv(output: FakeOutput, run_id: str, argv: Sequence[str]) -> ServiceProcess:
    env = dict(os.environ, DEVSTACK_RUN_ID=run_id, DEVSTACK_SERVICE="svc", PYTHONUNBUFFERED="1")
    return await ServiceProcess.spawn(
        name="svc",
        argv=argv,
        cwd=Path.cwd(),
        env=env,
        tty=False,
        output=output,  # type: ignore[arg-type]
    )


OUTLIVES_ITS_SHELL = """
    import os, signal, sys, time
    shell = os.getppid()
    def leave(signum, frame):
        while os.getppid() == shell:  # until the shell is gone and we are adopted
            time.sleep(0.001)
        sys.exit(0)
    signal.signal(signal.SIGTERM, leave)
    print("ready", flush=True)
    signal.pause()
"""


def test_a_stop_reaps_the_members_of_the_group_it_adopted(run_id: str, subreaper: None) -> None:
    """A shell's child that exits after the shell is adopted, and would stay a zombie
    in the group until the orphan reaper's sweep: the stop reaps it at once."""

    async def main() -> tuple[int, list[str], list[reaper.Entry] | None]:
        output = FakeOutput()
        said: list[str] = []
        argv = ["sh", "-c", '"$0" -c "$1"; :', PY, textwrap.dedent(OUTLIVES_ITS_SHELL)]
        process = await spawn_argv(output, run_id, argv)
        await output.until(lambda: "ready\n" in output.text())
        code = await process.stop(signal.SIGTERM, 10, said.append)
        children = reaper.own_children()
        left = None if children is None else [c for c in children if c.pgid == process.pid]
        return code, said, left

    code, said, left = run(main)
    assert code == -signal.SIGTERM
    assert said == []
    assert left == []


STARTS_A_HELPER_TO_STOP = """
    import signal, subprocess, sys
    def leave(signum, frame):
        helper = subprocess.Popen(["sleep", "300"], start_new_session=True)
        print("helper", helper.pid, flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, leave)
    print("ready", flush=True)
    signal.pause()
"""


def test_a_helper_that_leaves_the_group_while_stopping_is_stopped_too(
    run_id: str, subreaper: None
) -> None:
    async def main() -> tuple[int, list[str], int]:
        output = FakeOutput()
        said: list[str] = []
        process = await spawn(output, run_id, STARTS_A_HELPER_TO_STOP)
        await output.until(lambda: "ready\n" in output.text())
        code = await process.stop(signal.SIGTERM, 10, said.append)
        return code, said, int(output.text().split()[-1])

    code, said, helper = run(main)
    assert (code, said) == (0, [])
    assert os.waitpid(helper, 0)[1] == signal.SIGTERM  # adopted by us, ended by the stop


def test_a_member_ignoring_sigterm_after_its_shell_ended_is_killed(
    run_id: str, subreaper: None
) -> None:
    async def main() -> tuple[int, list[str], int]:
        output = FakeOutput()
        said: list[str] = []
        argv = ["sh", "-c", '"$0" -c "$1" & wait', PY, textwrap.dedent(IGNORES_TERM)]
        process = await spawn_argv(output, run_id, argv)
        await output.until(lambda: "ignoring TERM\n" in output.text())
        [member] = psutil.Process(process.pid).children()
        return await process.stop(signal.SIGTERM, 0.3, said.append), said, member.pid

    code, said, member = run(main)
    assert code == -signal.SIGTERM
    [message] = said
    assert message.startswith(f"pid {member} (")
    assert message.endswith(") did not stop within 0.3s, sending SIGKILL")


# -- what no process can receive (issue 11 §3) -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "env", "complaint"),
    [
        (["echo", "a\0b"], {}, "argument 1 of the command holds a NUL byte (at character 2)"),
        (["echo"], {"TOKEN": "s3cr\0t"}, "the value of TOKEN holds a NUL byte"),
        (["echo"], {"NAME": "x\ud800"}, "the value of NAME holds a character with no encoding"),
        (["e\udfffcho"], {}, "argument 0 of the command holds a character with no encoding"),
        (["echo"], {"A=B": "1"}, "the name of variable 'A=B'"),
    ],
)
def test_what_no_process_can_receive_is_named_without_its_value(
    argv: list[str], env: dict[str, str], complaint: str
) -> None:
    from devstack.runtime.process import check_spawnable

    with pytest.raises(ValueError, match="fix it where it is set") as caught:
        check_spawnable(argv, env)
    assert complaint in str(caught.value)
    assert "s3cr" not in str(caught.value)


def test_a_value_with_a_nul_fails_the_spawn_with_a_value_error(run_id: str) -> None:
    async def scenario() -> None:
        with pytest.raises(ValueError, match="the value of BAD holds a NUL byte"):
            await ServiceProcess.spawn(
                name="svc",
                argv=["true"],
                cwd=Path.cwd(),
                env={"DEVSTACK_RUN_ID": run_id, "BAD": "x\0"},
                tty=False,
                output=FakeOutput(),  # type: ignore[arg-type]
            )

    run(scenario)


def test_a_typed_ctrl_c_is_sigint_for_a_tty_services_whole_group(run_id: str) -> None:
    """The pty is the controlling terminal of the service's session: ^C written to it
    reaches every process of its foreground group (here the main one, which handles
    it, and its child, which dies of it); the stop still leaves nothing."""

    async def main() -> tuple[str, int]:
        output = FakeOutput()
        process = await spawn(
            output,
            run_id,
            """
            import os, signal, subprocess
            # One write per line: the handler may run between the parts of a print.
            signal.signal(signal.SIGINT, lambda *_: os.write(1, b"main: SIGINT\\n"))
            child = subprocess.Popen(["sleep", "3600"])
            os.write(1, b"ready\\n")
            os.write(1, f"child ended: {child.wait()}\\n".encode())
            signal.pause()
            """,
            tty=True,
        )
        await output.until(lambda: "ready\n" in output.text())
        process.write_input(b"\x03")
        await output.until(lambda: "child ended" in output.text())
        code = await process.stop(signal.SIGTERM, 5, print)
        return output.text(), code

    text, code = run(main)
    # Both get it at once: which says so first is the scheduler's choice.
    said = sorted(text.replace("^C", "").splitlines())
    assert said == ["child ended: -2", "main: SIGINT", "ready"]
    assert code == -signal.SIGTERM
