"""The real `devstack ui` and `devstack up --ui` in a real terminal: tmux (on a
server of this test's own, ended at the end), driven with send-keys and read with
capture-pane, at 80x24.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import DEVSTACK, clean_env, make_repo, run_cli, wait_until

PY = sys.executable
CONFIG = f"""\
services:
  api:
    cmd: [{PY}, -u, -c, "print('hello from api'); import time; time.sleep(3600)"]
"""


def hues(screen: str) -> list[int]:
    """The 256-colour SGR colours on the screen that are not greys (16, 231, 232-255)."""
    colours = [int(n) for n in re.findall(r"[34]8;5;(\d+)", screen)]
    assert not re.search(r"[34]8;2;", screen), "no true colour expected in tmux"
    return [n for n in colours if n not in (16, 231) and not 232 <= n <= 255]


class Tmux:
    """One tmux server on a socket of its own, one 80x24 window per command."""

    def __init__(self, socket: Path, env: dict[str, str]) -> None:
        assert shutil.which("tmux"), "tmux is needed for this test (apt-get install tmux)"
        self.base = ["tmux", "-S", str(socket), "-f", "/dev/null"]
        self.env = env

    def tmux(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout

    def open(self, name: str, command: str, cwd: Path) -> None:
        # The shell says how the command ended, then waits: the pane stays readable.
        script = f"{command}; echo EXIT=$?; sleep 600"
        self.tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", "-c", str(cwd), script)

    def screen(self, name: str, colours: bool = False) -> str:
        return self.tmux("capture-pane", "-p", *(["-e"] if colours else []), "-t", name)

    def wait_for(self, name: str, text: str) -> str:
        wait_until(lambda: text in self.screen(name), what=f"{text!r} on the screen")
        return self.screen(name)

    def keys(self, name: str, *keys: str) -> None:
        self.tmux("send-keys", "-t", name, *keys)

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], env=self.env, capture_output=True, check=False)


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    env = clean_env(PATH=f"{Path(DEVSTACK).parent}:/usr/bin:/bin", TERM="xterm-256color")
    server = Tmux(tmp_path / "tmux.sock", env)
    yield server
    server.close()


def test_ui_on_a_background_stack_then_up_with_the_ui(repo: Path, tmux: Tmux) -> None:
    make_repo(repo, CONFIG)
    started = run_cli("up", "-d", cwd=repo)
    assert started.returncode == 0, started.stderr
    try:
        tmux.open("ui", DEVSTACK + " ui", repo)
        tmux.wait_for("ui", "hello from api")
        screen = tmux.wait_for("ui", "? keys")
        assert re.search(r"api +running", screen)
        assert hues(tmux.screen("ui", colours=True)), "the state is coloured"
        tmux.keys("ui", "r")
        tmux.wait_for("ui", "asked by `devstack ui`")
        tmux.keys("ui", "?")
        tmux.wait_for("ui", "devstack ui keys")
        tmux.keys("ui", "Escape")
        wait_until(lambda: "devstack ui keys" not in tmux.screen("ui"), what="the keys to close")
        # The UI outlives its `up` and follows the next one.
        assert run_cli("down", cwd=repo).returncode == 0
        tmux.wait_for("ui", "the stack is down: waiting for the next devstack up")
        assert re.search(r"api +stopped", tmux.screen("ui"))
        assert run_cli("up", "-d", cwd=repo).returncode == 0
        wait_until(
            lambda: re.search(r"api +running", tmux.screen("ui")) is not None,
            what="the UI to follow the next up",
        )
        tmux.keys("ui", "q")
        tmux.wait_for("ui", "EXIT=0")
        # Closing the UI stopped nothing.
        status = run_cli("ps", cwd=repo)
        assert re.search(r"api +running", status.stdout), status.stdout
    finally:
        assert run_cli("down", cwd=repo).returncode == 0

    tmux.open("up", "NO_COLOR=1 " + DEVSTACK + " up --ui", repo)
    tmux.wait_for("up", "hello from api")
    assert not hues(tmux.screen("up", colours=True)), "NO_COLOR: greys only"
    tmux.keys("up", "q")
    screen = tmux.wait_for("up", "EXIT=0")
    assert "devstack ui closed: stopping all services" in screen
    assert "api    ▸ stopped" in screen or re.search(r"api +. stopped", screen)
