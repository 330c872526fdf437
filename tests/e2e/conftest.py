"""The example stack (devstack.yaml, .env, services/) copied to a temp dir on free ports.

Each test gets its own copy, runs the real `devstack up` in it, and proves that
nothing it started is left running.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import TIMEOUT, Running, assert_no_processes_under, clean_env, wait_until

REPO = Path(__file__).resolve().parents[2]
# The ports devstack.yaml and .env use; each copy gets free ones instead.
DEFAULT_PORTS = {"api": 8400, "email": 8401, "smtp": 8425}


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def replace_ports(path: Path, ports: dict[str, int], names: tuple[str, ...]) -> None:
    text = path.read_text()
    for name in names:
        old = str(DEFAULT_PORTS[name])
        assert old in text, f"{path.name} no longer mentions port {old} ({name})"
        text = re.sub(rf"\b{old}\b", str(ports[name]), text)
    path.write_text(text)


class Stack:
    """A copy of the example stack and ways to talk to it while `devstack up` runs it."""

    def __init__(self, root: Path, ports: dict[str, int]) -> None:
        self.root = root
        self.ports = ports
        venv_bin = str(Path(sys.executable).parent)
        # As `make dev` does: the venv's bin first, so `python3` is the venv's.
        self.env = clean_env(PATH=f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")

    @contextlib.contextmanager
    def up(self, *args: str) -> Iterator[Running]:
        """`devstack up ARGS` in the copy, killed at the end if a test failed midway."""
        running = Running("up", *args, cwd=self.root, env=self.env)
        try:
            yield running
        finally:
            running.close()

    def interrupt(self, up: Running) -> None:
        """Ctrl+C, as a terminal sends it: devstack exits 130 and leaves nothing running."""
        up.interrupt()
        assert up.wait() == 130, up.output()
        assert_no_processes_under(self.root)

    def request(self, method: str, port: str, path: str, body: bytes | None = None) -> Any:
        url = f"http://127.0.0.1:{self.ports[port]}{path}"
        request = urllib.request.Request(url, data=body, method=method)
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return json.load(response)
        except urllib.error.HTTPError as error:
            return json.load(error)

    def post_csv(self, csv: str, query: str = "") -> int:
        answer = self.request("POST", "api", f"/imports{query}", csv.encode())
        return int(answer["job_id"])

    def job(self, job_id: int) -> dict[str, Any]:
        return self.request("GET", "api", f"/jobs/{job_id}")  # type: ignore[no-any-return]

    def wait_job(self, job_id: int, status: str) -> dict[str, Any]:
        """Wait until the job is final; fail with its state if it is not `status`."""
        final = ("done", "failed", "cancelled", "rejected")
        wait_until(lambda: self.job(job_id)["status"] in final, what=f"job {job_id} to end")
        job = self.job(job_id)
        assert job["status"] == status, job
        return job

    def messages(self) -> list[dict[str, Any]]:
        return self.request("GET", "email", "/messages")  # type: ignore[no-any-return]

    def wait_mail_to(self, *addresses: str) -> list[dict[str, Any]]:
        def arrived() -> bool:
            caught = {to for message in self.messages() for to in message["to"]}
            return set(addresses) <= caught

        wait_until(arrived, what=f"mail to {', '.join(addresses)}")
        return self.messages()


def seen(up: Running, pattern: str, timeout: float = TIMEOUT) -> list[str]:
    """Every output line matching `pattern`, once at least one has appeared (in any order
    with other services' lines, unlike Running.wait_for)."""
    regex = re.compile(pattern)
    wait_until(lambda: any(regex.search(line) for line in list(up.lines)), timeout, pattern)
    return [line for line in list(up.lines) if regex.search(line)]


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    root = tmp_path / "repo"
    root.mkdir()
    shutil.copy(REPO / "devstack.yaml", root)
    shutil.copy(REPO / ".env", root)
    shutil.copytree(
        REPO / "services",
        root / "services",
        ignore=shutil.ignore_patterns("__pycache__", ".env.local"),
    )
    ports = dict(zip(DEFAULT_PORTS, free_ports(len(DEFAULT_PORTS)), strict=True))
    replace_ports(root / "devstack.yaml", ports, ("api", "email"))
    replace_ports(root / ".env", ports, ("smtp",))
    yield Stack(root, ports)
    assert_no_processes_under(tmp_path)
