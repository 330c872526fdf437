"""Naming the process that holds a port: a real listening child process."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.runtime import ports

LISTENER = """
import socket, sys
server = socket.socket(socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET)
server.bind(("::1" if sys.argv[1] == "6" else "127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
sys.stdin.read()
"""


@pytest.fixture(params=["4", "6"])
def listener(request: pytest.FixtureRequest) -> Iterator[tuple[subprocess.Popen[str], int]]:
    if request.param == "6" and not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    child = subprocess.Popen(
        [sys.executable, "-c", LISTENER, request.param],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    try:
        port = int(child.stdout.readline())
        yield child, port
    finally:
        child.communicate("", timeout=30)  # EOF on stdin: it exits; nothing is left
    assert child.returncode == 0


def test_who_holds_names_the_listening_process(
    listener: tuple[subprocess.Popen[str], int],
) -> None:
    child, port = listener
    holder = ports.who_holds(port)
    assert holder is not None
    assert holder.pid == child.pid
    assert str(holder).startswith(f"pid {child.pid} ({sys.executable} -c ")
    assert ports._scan_processes(port) == {child.pid}  # the per-process fallback agrees


def test_a_free_port_has_no_holder() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: nobody holds it for a server
        assert ports.who_holds(port) is None
        assert ports._scan_processes(port) == set()


def test_holder_reads_like_a_sentence() -> None:
    assert str(ports.Holder(123, "python -m http.server 8000")) == (
        "pid 123 (python -m http.server 8000)"
    )


def test_port_holder_names_the_listener_or_says_free(
    listener: tuple[subprocess.Popen[str], int],
) -> None:
    child, port = listener
    assert not ports.is_free(port)
    assert ports.port_holder(port) == str(ports.who_holds(port))
    assert f"pid {child.pid} " in (ports.port_holder(port) or "")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    assert ports.is_free(free) and ports.port_holder(free) is None
