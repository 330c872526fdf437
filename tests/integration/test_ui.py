"""`devstack ui` against a real running stack: Textual's pilot presses the keys, the
real `devstack up` (run as a process, as a user would) answers on its control socket.

One stack per test; each test proves several things of the same screen to keep the
suite lean.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from devstack.core.errors import DevstackError
from devstack.runtime import control
from devstack.ui import view
from devstack.ui.app import DevstackApp
from devstack.ui.envpane import EnvScreen
from devstack.ui.stack import ServiceRow, StackClient
from tests.support import DEVSTACK, TIMEOUT, Running, clean_env, make_repo

PY = sys.executable
SECRET = "hunter2-very-secret"
CONFIG = f"""\
services:
  api:
    cmd: [{PY}, -u, -c, "print('hello from api'); import time; time.sleep(3600)"]
    env:
      API_TOKEN: {SECRET}
      GREETING: hi
  echo:
    cmd: [{PY}, -u, prompt.py]
    tty: true
"""
# A prompt as a tty service: it echoes lines, says when Ctrl+C reaches it as SIGINT,
# and outlives the hang-up of its terminal (only devstack's stop or the guardian end it).
PROMPT = """\
import os, signal, sys
signal.signal(signal.SIGINT, lambda *_: print("got SIGINT", flush=True))
signal.signal(signal.SIGHUP, signal.SIG_IGN)
try:
    own = os.tcgetpgrp(0) == os.getpgrp()
except OSError:
    own = False
print("echo ready", "in the foreground of its terminal" if own else "without a terminal")
sys.stdout.flush()
for line in sys.stdin:
    print("got " + line.strip(), flush=True)
"""


def start_stack(repo: Path) -> Running:
    make_repo(repo, CONFIG, {"prompt.py": PROMPT})
    running = Running("up", cwd=repo)
    running.wait_for_each(r"api +\| hello from api", r"echo +\| echo ready")
    return running


def stop_stack(running: Running) -> None:
    running.interrupt()
    assert running.wait() == 130
    running.close()


async def until(pilot: Pilot[int], ready: Callable[[], bool], what: str) -> None:
    """Let the app run until `ready()` holds (the stack answers over a real socket)."""
    deadline = time.monotonic() + TIMEOUT
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def shown_log(app: DevstackApp) -> list[str]:
    return [str(line) for line in app.log_pane.lines]


def ui_for(repo: Path, silence: float = control.CLIENT_TIMEOUT) -> DevstackApp:
    client = StackClient(repo, silence=silence)
    return DevstackApp(client, config_file=repo / "devstack.yaml", tty_services={"echo"})


def test_restart_key_search_and_the_log_before_and_after(repo: Path) -> None:
    running = start_stack(repo)
    try:
        asyncio.run(_restart_and_search(ui_for(repo)))
    finally:
        stop_stack(running)


async def _restart_and_search(app: DevstackApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "hello from api" in shown_log(app), "api's earlier lines")
        first_pid = app.rows["api"].pid
        # A second UI's stream, open at the same time, hears of the restart too.
        other = StackClient(app.stack.root).statuses()
        assert any(row.pid == first_pid for row in await anext(other))
        await pilot.press("r")
        await until(
            pilot,
            lambda: app.rows["api"].restarts == 1 and app.rows["api"].state == "running",
            "api to be restarted",
        )
        row = app.rows["api"]
        assert row.pid != first_pid and row.reason == "asked by `devstack ui`"
        while not any(row.restarts == 1 and row.pid for row in await anext(other)):
            pass
        await other.aclose()
        table = app.query_one("#services", DataTable)
        assert str(table.get_cell("api", table.ordered_columns[-1].key)) == "asked by `devstack ui`"
        # The new instance's first line arrives live, after the UI opened.
        await until(pilot, lambda: shown_log(app).count("hello from api") == 2, "the live line")
        said = f"[devstack] started (pid {row.pid}): asked by `devstack ui`"
        assert said in shown_log(app)
        await pilot.press("slash", *"hello", "enter")
        assert shown_log(app) == ["hello from api", "hello from api"]
        title = app.query_one("#pane-title", Static).render()
        assert "/hello: 2 lines" in str(title)
        await pilot.press("escape")
        assert len(shown_log(app)) > 2  # the separators are back


def test_typing_into_a_tty_service_ctrl_c_and_the_env_pane_masks_secrets(repo: Path) -> None:
    running = start_stack(repo)
    try:
        assert "echo ready in the foreground of its terminal" in running.output()
        asyncio.run(_type_and_env(ui_for(repo)))
        # ^Z stops nothing (no shell could resume it); ^C after it is SIGINT again.
        running.wait_for(r"echo +\| \^Cgot SIGINT")  # typed in the UI
        control.request(repo, "input", services=["echo"], data="\x1a\x03")
        running.wait_for(r"echo +\| \^Z\^Cgot SIGINT")  # NOFLSH: ^C dropped no output
        with pytest.raises(DevstackError, match="api reads no input"):
            control.request(repo, "input", services=["api"], data="x")
        with pytest.raises(DevstackError, match="did you mean 'echo'"):
            control.request(repo, "input", services=["ecko"], data="x")
        # SIGKILL of devstack: its pty hangs up, which the prompt ignores; the guardian
        # still ends it (the `repo` fixture fails if anything is left).
        running.send(signal.SIGKILL)
        assert running.wait() == -signal.SIGKILL
    finally:
        running.close()


async def _type_and_env(app: DevstackApp) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "echo" in app.rows, "the services")
        await pilot.press("j", "i", *"ping", "enter")
        await until(pilot, lambda: "got ping" in shown_log(app), "the echo of what was typed")
        await pilot.press("ctrl+c")  # SIGINT for the prompt, which says so and runs on
        # The terminal echoes "^C" before the handler's line, as a terminal would.
        await until(pilot, lambda: shown_log(app)[-1].endswith("got SIGINT"), "Ctrl+C's SIGINT")
        await pilot.press(*"pong", "enter")
        await until(pilot, lambda: "got pong" in shown_log(app), "the prompt to run on")
        await pilot.press("escape", "k", "e")
        assert isinstance(app.screen, EnvScreen)
        env = app.screen
        table = env.query_one("#variables", DataTable)
        await until(pilot, lambda: table.row_count > 0, "the env rows")
        cells = [str(cell) for row in range(table.row_count) for cell in table.get_row_at(row)]
        assert "API_TOKEN" in cells and "hi" in cells
        assert not any(SECRET in cell for cell in cells)
        table.move_cursor(row=[str(c) for c in table.get_column_at(0)].index("API_TOKEN"))
        await pilot.pause()
        story = str(env.query_one("#story", Static).render())
        assert "API_TOKEN for api" in story and "devstack.yaml:5" in story
        assert SECRET not in story


NEXT_CONFIG = f"""\
services:
  api:
    cmd: [{PY}, -u, -c, "print('hello again from api'); import time; time.sleep(3600)"]
  extra:
    cmd: [{PY}, -u, -c, "print('extra is up'); import time; time.sleep(3600)"]
"""


def test_the_ui_follows_the_next_up_after_a_stop_and_after_a_kill(repo: Path) -> None:
    """Start, stop, start again (another devstack.yaml), kill: the UI follows each run."""
    running = [start_stack(repo)]
    try:
        asyncio.run(_follow_each_up(ui_for(repo), repo, running))
    finally:
        for each in running:
            each.close()


async def _follow_each_up(app: DevstackApp, repo: Path, running: list[Running]) -> None:
    async with app.run_test(size=(80, 24)) as pilot:
        old_pid = (await pids(repo))["api"]
        await until(pilot, lambda: app.rows.get("api", DOWN).pid == old_pid, "api")
        running[0].interrupt()
        assert await asyncio.to_thread(running[0].wait) == 130
        await until(pilot, lambda: app.stack_ended, "the UI to see the stack end")
        await until(pilot, lambda: not any(row.pid for row in app.rows.values()), "no pids")
        assert {row.state for row in app.rows.values()} == {"stopped"}
        # The title says so once the run's last lines are in (up to OUTPUT_DRAIN after).
        await until(pilot, lambda: view.STACK_DOWN in title(app), "the title to say so")

        # The next `up` of the repo, with another devstack.yaml: its services and logs.
        make_repo(repo, NEXT_CONFIG)
        second = Running("up", cwd=repo)
        running.append(second)
        await asyncio.to_thread(
            second.wait_for_each, r"api +\| hello again", r"extra +\| extra is up"
        )
        new_pid = (await pids(repo))["api"]
        await until(pilot, lambda: app.rows.get("api", DOWN).pid == new_pid, "the new run's api")
        assert not app.stack_ended and view.STACK_DOWN not in title(app)
        assert set(app.rows) == {"api", "extra"} and app.rows["api"].pid != old_pid
        await until(pilot, lambda: "hello again from api" in shown_log(app), "the new run's log")
        assert "hello from api" in shown_log(app)  # the run before, from the log file
        await pilot.press("j")
        await until(pilot, lambda: "extra is up" in shown_log(app), "the new service's log")

        # Killed, its socket stays behind: the UI says the stack is down, and waits on.
        second.proc.kill()
        await asyncio.to_thread(second.wait)
        await until(pilot, lambda: app.stack_ended, "the UI to see the killed up")
        await until(
            pilot,
            lambda: {row.state for row in app.rows.values()} == {"stopped"},
            "no service shown running",
        )
        assert control.recorded_socket_path(repo).exists() and not control.is_running(repo)
        third = Running("up", cwd=repo)
        running.append(third)
        await asyncio.to_thread(third.wait_for, r"extra +\| extra is up")
        extra_pid = (await pids(repo))["extra"]
        await until(
            pilot,
            lambda: not app.stack_ended and app.rows["extra"].pid == extra_pid,
            "the UI to follow the up after the killed one",
        )
        third.interrupt()
        assert await asyncio.to_thread(third.wait) == 130


def test_the_ui_says_when_up_is_stopped_with_ctrl_z_and_goes_on_after_fg(repo: Path) -> None:
    running = start_stack(repo)
    try:
        asyncio.run(_stopped_and_resumed(ui_for(repo, silence=1.0), repo, running))
    finally:
        running.send(signal.SIGCONT)  # whatever happened, it must be able to stop
        stop_stack(running)


async def _stopped_and_resumed(app: DevstackApp, repo: Path, running: Running) -> None:
    async with app.run_test(size=(100, 24)) as pilot:
        old_pid = (await pids(repo))["api"]
        await until(pilot, lambda: app.rows.get("api", DOWN).pid == old_pid, "api")
        running.send(signal.SIGSTOP)  # what Ctrl+Z does to it
        await until(pilot, lambda: view.NOT_ANSWERING in title(app), "the UI to say so")
        assert not app.stack_ended and app.rows["api"].pid == old_pid  # kept meanwhile
        running.send(signal.SIGCONT)  # `fg`
        await until(pilot, lambda: view.NOT_ANSWERING not in title(app), "the UI to see it back")
        await pilot.press("r")  # the same stream goes on: a restart shows
        await until(pilot, lambda: app.rows["api"].pid not in (None, old_pid), "the new api")


DOWN = ServiceRow("", "stopped")


async def pids(repo: Path) -> dict[str, int]:
    """Each service's pid, as `devstack ps` has it (not from the UI under test)."""
    reply = await asyncio.to_thread(control.request, repo, "ps")
    return {row["name"]: row["pid"] for row in reply["services"]}


def title(app: DevstackApp) -> str:
    return str(app.query_one("#pane-title", Static).render())


def test_the_ui_needs_a_terminal_and_a_running_stack(repo: Path) -> None:
    make_repo(repo, CONFIG)
    cases = {
        ("ui",): "no devstack up is running",
        ("up", "--ui"): "devstack up --ui needs a terminal",
        ("up", "--ui", "-d"): "choose -d or --ui",
    }
    for args, said in cases.items():
        done = subprocess.run(
            [DEVSTACK, *args],
            cwd=repo,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
        assert done.returncode != 0 and said in done.stderr, (args, done.stderr)
    assert not (repo / ".devstack" / "logs").exists()  # nothing was started
