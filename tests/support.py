"""Helpers for integration tests: fixture monorepos, the real CLI, and leak checks.

Tests wait on events (a line appears, a process exits) with generous timeouts,
never on fixed sleeps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import psutil

DEVSTACK = str(Path(sys.executable).with_name("devstack"))
TIMEOUT = 30.0


def make_repo(root: Path, config: str, files: Mapping[str, str] | None = None) -> Path:
    """Write devstack.yaml (dedented) and other files under `root`; return root."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "devstack.yaml").write_text(textwrap.dedent(config))
    for name, content in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(content))
    return root


def clean_env(**extra: str) -> dict[str, str]:
    """The test runner's environment without colour settings that change output."""
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR")}
    env.update(extra)
    return env


def run_cli(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run `devstack ARGS` to completion; stdout and stderr captured separately."""
    return subprocess.run(
        [DEVSTACK, *args],
        cwd=cwd,
        env=dict(env) if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class Running:
    """A `devstack` process running in the background, its output collected by a thread."""

    def __init__(self, *args: str, cwd: Path, env: Mapping[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [DEVSTACK, *args],
            cwd=cwd,
            env=dict(env) if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so a test can signal it like a terminal would
        )
        self.lines: list[str] = []
        self._cursor = 0
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            with self._changed:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, pattern: str, timeout: float = TIMEOUT) -> re.Match[str]:
        """The next line (after the last one matched) that matches `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                while self._cursor < len(self.lines):
                    line = self.lines[self._cursor]
                    self._cursor += 1
                    if match := regex.search(line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (
                    not self._reader.is_alive() and self._cursor >= len(self.lines)
                ):
                    raise AssertionError(
                        f"no line matching {pattern!r} within {timeout}s; output:\n"
                        + "\n".join(self.lines[-60:])
                    )
                self._changed.wait(remaining)

    def wait_for_each(self, *patterns: str, timeout: float = TIMEOUT) -> None:
        """Lines (after the last one matched) matching every one of `patterns`, in any
        order; the next wait starts after the last of them."""
        regexes = [re.compile(pattern) for pattern in patterns]
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [self._find(regex) for regex in regexes]
                if all(index is not None for index in found):
                    self._cursor = max(found) + 1  # type: ignore[type-var]
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    missing = [p for p, index in zip(patterns, found, strict=True) if index is None]
                    raise AssertionError(
                        f"no lines matching {missing!r} within {timeout}s; output:\n"
                        + "\n".join(self.lines[-60:])
                    )
                self._changed.wait(remaining)

    def _find(self, regex: re.Pattern[str]) -> int | None:
        for index in range(self._cursor, len(self.lines)):
            if regex.search(self.lines[index]):
                return index
        return None

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def interrupt(self) -> None:
        """Ctrl+C as a terminal sends it: SIGINT to the whole foreground process group."""
        os.killpg(self.proc.pid, signal.SIGINT)

    def wait(self, timeout: float = TIMEOUT) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(TIMEOUT)
        self._reader.join(TIMEOUT)
        if self.proc.stdout:
            self.proc.stdout.close()


def processes_under(root: Path) -> list[psutil.Process]:
    """Live processes (not zombies) whose cwd or command line is inside `root`."""
    root_text = str(root.resolve())
    found = []
    for proc in psutil.process_iter(["pid", "cwd", "cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE or proc.pid == os.getpid():
                continue
            cwd = proc.info["cwd"] or ""
            cmdline = " ".join(proc.info["cmdline"] or ())
            if cwd.startswith(root_text) or root_text in cmdline:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def assert_no_processes_under(root: Path, timeout: float = 10.0) -> None:
    """Every process started for the repo at `root` is gone; kills (by pid) and fails if not."""
    deadline = time.monotonic() + timeout
    left = processes_under(root)
    while left and time.monotonic() < deadline:
        psutil.wait_procs(left, timeout=0.2)
        left = processes_under(root)
    if left:
        described = [f"{p.pid} {' '.join(p.cmdline())}" for p in left if p.is_running()]
        for proc in left:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        raise AssertionError("processes left behind:\n" + "\n".join(described))


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    """Wait for a condition that has no event to await (a file appears, a pid is gone)."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


def free_port() -> int:
    """A loopback port nothing listens on (at the moment of asking)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def held_port() -> Iterator[int]:
    """A loopback port this test process listens on, as another program would hold it."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def cmdline_of(process: psutil.Process) -> list[str]:
    """Its command line, or [] if it is gone (the child that checks `up`'s run is
    short-lived, and may end between a listing of children and this)."""
    try:
        return process.cmdline()
    except psutil.NoSuchProcess:
        return []
