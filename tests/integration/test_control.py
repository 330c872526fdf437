"""Controlling a running `devstack up` from another process through the real CLI:
ps, logs, restart/stop/start/down, the live env diff, stale sockets, bad input."""

from __future__ import annotations

import json
import re
import signal
import socket
import sys
from pathlib import Path

import psutil

from tests.support import Running, make_repo, run_cli, wait_until

PY = sys.executable
SLEEPER = f"{PY} -c 'import time; time.sleep(120)'"

STACK = f"""
services:
  api:
    cmd: echo api up; exec {SLEEPER}
  jobs:
    cmd: echo jobs up; exec {SLEEPER}
  extra:
    cmd: echo extra up; exec {SLEEPER}
    autostart: false
  talker:
    cmd: for n in 1 2 3 4 5; do echo "line $n"; done; exec {SLEEPER}
  web:
    # A wrapper that changes the environment before starting the real program.
    cmd: echo web up; GREETING=changed API_TOKEN=leaked {PY} -c 'import time; time.sleep(120)'; true
    env:
      GREETING: hello
      API_TOKEN: s3cret-value
"""


def ps(repo: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    result = run_cli("ps", "--json", cwd=repo)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row for row in json.loads(result.stdout)["services"]}


def start_stack(repo: Path, *names: str) -> Running:
    make_repo(repo, STACK)
    up = Running("up", *names, cwd=repo)
    first_words = {name: "line 1" if name == "talker" else f"{name} up" for name in names}
    wait_until(
        lambda: all(f"| {words}" in up.output() for words in first_words.values()),
        what=f"{', '.join(names)} to start",
    )
    wait_until(lambda: (repo / ".devstack" / "control.path").exists(), what="the socket")
    return up


def stop_stack(repo: Path, up: Running) -> None:
    result = run_cli("down", cwd=repo)
    assert result.returncode == 0, result.stderr
    assert "stopping the stack" in result.stdout
    assert up.proc.poll() is not None  # `down` returned only once up had exited
    up.wait()


def test_without_a_running_stack_every_command_says_so_in_one_line(repo: Path) -> None:
    make_repo(repo, STACK)
    for command in (["ps"], ["restart", "api"], ["stop", "api"], ["start", "api"], ["down"]):
        result = run_cli(*command, cwd=repo)
        assert result.returncode == 1, command
        assert result.stderr.strip().splitlines() == [
            f"error: no devstack up is running in {repo.resolve()}"
        ]
    result = run_cli("logs", cwd=repo)
    assert result.returncode == 1
    assert "no logs in" in result.stdout


def test_ps_and_actions_on_a_running_stack(repo: Path) -> None:
    up = start_stack(repo, "api", "jobs")
    try:
        rows = ps(repo)
        assert set(rows) == {"api", "jobs"}
        api = rows["api"]
        assert api["state"] == "running" and api["restarts"] == 0 and api["last_exit"] is None
        assert psutil.pid_exists(api["pid"])
        assert api["uptime"] >= 0 and api["memory_bytes"] > 0 and api["cpu_percent"] >= 0
        table = run_cli("ps", cwd=repo).stdout
        assert "SERVICE" in table and "MEM" in table and "jobs" in table

        restarted = run_cli("restart", "api", cwd=repo)
        assert restarted.returncode == 0, restarted.stderr
        new_api = ps(repo)["api"]
        assert restarted.stdout.strip() == f"api: running (pid {new_api['pid']})"
        assert new_api["pid"] != api["pid"] and new_api["restarts"] == 1
        assert not psutil.pid_exists(api["pid"])

        typo = run_cli("restart", "apj", cwd=repo)
        assert typo.returncode == 2
        assert "unknown service 'apj'" in typo.stderr and "did you mean 'api'?" in typo.stderr

        jobs_pid = ps(repo)["jobs"]["pid"]
        stopped = run_cli("stop", "jobs", cwd=repo)
        assert (stopped.returncode, stopped.stdout.strip()) == (0, "jobs: stopped")
        assert ps(repo)["jobs"]["pid"] is None and not psutil.pid_exists(jobs_pid)

        started = run_cli("start", "jobs", "extra", cwd=repo)
        assert started.returncode == 0, started.stdout + started.stderr
        rows = ps(repo)
        assert rows["jobs"]["state"] == rows["extra"]["state"] == "running"
        up.wait_for(r"^extra +\| extra up")

        _garbage_is_refused_and_the_stack_keeps_running(repo)
        stop_stack(repo, up)
        assert not (repo / ".devstack" / "control.sock").exists()
        assert run_cli("ps", cwd=repo).returncode == 1
    finally:
        up.close()


def _garbage_is_refused_and_the_stack_keeps_running(repo: Path) -> None:
    path = repo / ".devstack" / (repo / ".devstack" / "control.path").read_text().strip()
    for garbage in (b"{not json\n", b"z" * 200_000 + b"\n", b'{"v": 9, "op": "ps"}\n'):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(garbage)
            reply = json.loads(sock.makefile("rb").readline())
        assert reply["ok"] is False and reply["error"]
    assert set(ps(repo)) >= {"api", "jobs"}


def test_logs_from_files_and_following_live_output(repo: Path) -> None:
    up = start_stack(repo, "talker")
    try:
        up.wait_for(r"^talker +\| line 5")
        last = run_cli("logs", "talker", "-n", "3", cwd=repo)
        assert last.returncode == 0, last.stderr
        lines = last.stdout.splitlines()
        assert lines == [f"talker | line {n}" for n in (3, 4, 5)]

        follower = Running("logs", "-f", "-n", "2", "talker", cwd=repo)
        try:
            follower.wait_for(r"^talker \| line 5$")
            assert run_cli("restart", "talker", cwd=repo).returncode == 0
            for n in range(1, 6):
                follower.wait_for(rf"^talker \| line {n}$")
        finally:
            follower.close()  # leaves mid-stream: the stack does not mind
        assert ps(repo)["talker"]["state"] == "running"

        typo = run_cli("logs", "-f", "talkr", cwd=repo)
        assert typo.returncode == 2 and "did you mean 'talker'?" in typo.stderr
        to_the_end = Running("logs", "-f", "-n", "1", cwd=repo)
        try:
            to_the_end.wait_for(r"^talker \| ")  # the tail comes once it follows
            stop_stack(repo, up)
            assert to_the_end.wait() == 0
            to_the_end.wait_for("has ended")
        finally:
            to_the_end.close()
    finally:
        up.close()
    after = run_cli("logs", "talker", "-n", "6", cwd=repo)  # from the files, stack gone
    assert after.returncode == 0
    lines = after.stdout.splitlines()
    assert own_lines(lines)[-5:] == [f"talker | line {n}" for n in range(1, 6)]
    separators = [line for line in lines if line not in own_lines(lines)]
    assert separators and all(SEPARATOR.match(line) for line in separators), lines


SEPARATOR = re.compile(r"^talker \| \[devstack\] started .* pid \d+$")


def own_lines(lines: list[str]) -> list[str]:
    """The service's own lines, without the separator each start writes to its log file."""
    return [line for line in lines if not SEPARATOR.match(line)]


def test_live_env_shows_what_the_wrapper_changed_masked(repo: Path) -> None:
    up = start_stack(repo, "web")
    try:
        wait_until(
            lambda: len(psutil.Process(ps(repo)["web"]["pid"]).children()) == 1,
            what="web's program below its shell",
        )
        result = run_cli("env", "web", "--live", cwd=repo)
        assert result.returncode == 0, result.stderr
        out = result.stdout
        assert "below pid" in out  # the shell wrapper was seen through
        assert re.search(r"changed +GREETING +hello -> changed", out), out
        assert "API_TOKEN" in out and "s3cret" not in out and "leaked" not in out
        revealed = run_cli("env", "web", "--live", "--reveal", cwd=repo).stdout
        assert "s3cret-value -> leaked" in revealed
        stop_stack(repo, up)
    finally:
        up.close()


def test_a_killed_up_leaves_a_socket_the_next_one_replaces(repo: Path) -> None:
    up = start_stack(repo, "api")
    try:
        pid = ps(repo)["api"]["pid"]
        up.send(signal.SIGKILL)
        up.wait()
        wait_until(lambda: not psutil.pid_exists(pid), what="the guardian to end api")
        assert (repo / ".devstack" / "control.sock").exists()  # left behind
        result = run_cli("ps", cwd=repo)
        assert result.returncode == 1
        assert "no devstack up is running" in result.stderr
        assert "already" not in result.stderr
    finally:
        up.close()
    again = start_stack(repo, "api")
    try:
        assert ps(repo)["api"]["state"] == "running"
        stop_stack(repo, again)
    finally:
        again.close()


class TerminalRunning(Running):
    """`Running` with stdin on a pseudo-terminal, so `up` listens for typed commands."""

    def __init__(self, *args: str, cwd: Path) -> None:
        import os
        import pty
        import subprocess
        import threading

        from tests.support import DEVSTACK, clean_env

        self.keyboard, terminal = pty.openpty()
        self.proc = subprocess.Popen(
            [DEVSTACK, *args],
            cwd=cwd,
            env=clean_env(),
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(terminal)
        self.lines = []
        self._cursor = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def type(self, text: str) -> None:
        import os

        os.write(self.keyboard, text.encode())

    def close(self) -> None:
        import os

        super().close()
        os.close(self.keyboard)


def test_r_and_enter_in_the_up_terminal_restarts(repo: Path) -> None:
    make_repo(repo, STACK)
    up = TerminalRunning("up", "api", "jobs", cwd=repo)
    try:
        wait_until(lambda: "jobs up" in up.output() and "api up" in up.output(), what="start")
        wait_until(lambda: (repo / ".devstack" / "control.path").exists(), what="the socket")
        first_api = ps(repo)["api"]["pid"]
        up.type("r api\n")
        up.wait_for(r"^api +▸ restarting: r typed in the terminal")
        wait_until(lambda: ps(repo)["api"]["restarts"] == 1, what="api to restart")
        assert ps(repo)["jobs"]["restarts"] == 0 and ps(repo)["api"]["pid"] != first_api
        up.type("r jbos\n")
        up.wait_for(r"unknown service 'jbos'.*did you mean 'jobs'")
        assert run_cli("stop", "jobs", cwd=repo).returncode == 0
        up.type("r\n")  # every service, except one stopped on purpose
        wait_until(lambda: ps(repo)["api"]["restarts"] == 2, what="every service to restart")
        assert ps(repo)["jobs"]["state"] == "stopped"
        stop_stack(repo, up)
    finally:
        up.close()
