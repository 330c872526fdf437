"""How `devstack mcp` reaches the running stack: the one adapter over the control client.

Every call the MCP tools make on a running `devstack up` goes through `Stack`, with the
same requests `ps`, `restart`, `stop`, `start` and `down` send, so switching to another
client interface (issue 14's client Protocol) touches this module only. Calls block; the
server runs them off its event loop. Starting the stack is `devstack up -d` itself, run
as a command, so the background stack is exactly the one the CLI starts.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.core.errors import DevstackError
from devstack.runtime import control

DOWN_WAIT = 60.0  # seconds `down` waits for the stack's `up` to exit


@dataclass(frozen=True)
class Started:
    """What `devstack up -d` did: its exit status and what it printed."""

    exit_status: int
    output: str


class Stack:
    """The running stack of the repo whose devstack.yaml is `config_path`."""

    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.root = config_path.parent

    def running(self) -> bool:
        return control.is_running(self.root)

    def status(self) -> dict[str, Any]:
        """The `ps` reply: the supervisor's pid, the repo and a row per service."""
        return control.request(self.root, "ps")

    def service_envs(self) -> dict[str, dict[str, str]]:
        """Each service's environment as the running `up` gave it; none if none runs."""
        try:
            names = [row["name"] for row in self.status()["services"]]
        except DevstackError:
            return {}
        environments = {}
        for name in names:
            try:
                reply = control.request(self.root, "env", services=[name])
            except DevstackError:
                continue  # removed from devstack.yaml meanwhile
            environments[name] = dict(reply["values"])
        return environments

    def act(self, op: str, names: list[str]) -> list[dict[str, Any]]:
        """`restart`, `start` or `stop` the services; their rows once they settled."""
        # A restart's reason, in `ps` and in the stack's output, names the agent's server.
        by = {"by": "devstack mcp"} if op == "restart" else {}
        reply = control.request(self.root, op, services=names, **by)
        rows: list[dict[str, Any]] = reply["services"]
        return rows

    def shut_down(self, timeout: float = DOWN_WAIT) -> tuple[int, bool]:
        """Ask the stack to stop, as `devstack down`; its pid, and whether it exited in time."""
        pid = int(control.request(self.root, "down")["pid"])
        return pid, _wait_for_exit(pid, timeout)

    def start_detached(self, names: list[str], timeout: float) -> Started:
        """Run `devstack up -d [NAMES]` for this repo, at most `timeout` seconds."""
        argv = [sys.executable, "-m", "devstack", "-f", str(self.config_path), "up", "-d", *names]
        try:
            done = subprocess.run(
                argv,
                cwd=self.root,
                # Never the MCP session's own stdin and stdout: they carry the protocol.
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as expired:
            output = (expired.output or b"").decode("utf-8", "replace")
            return Started(1, output + f"\n(no answer from devstack up -d after {timeout:.0f}s)")
        return Started(done.returncode, done.stdout.decode("utf-8", "replace"))


def _wait_for_exit(pid: int, timeout: float) -> bool:
    """Whether process `pid` exited within `timeout` seconds (a pidfd or kqueue)."""
    import psutil

    from devstack.runtime import platform

    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return True
    return not platform.current().wait_gone([process], timeout)
