"""Who holds a TCP port: the pid and command line to name in "port 8000 is in use by ...".

The system-wide connection table is one call; where it is not readable as a whole
(macOS without root) or does not say which process owns a socket, each process we
may inspect is asked in turn.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Holder:
    """A process listening on a port."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


def is_free(port: int) -> bool:
    """Whether a server could listen on TCP `port` now (on any address, v4 and v6)."""
    for family, address in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                # As servers do, so a port in TIME_WAIT after a restart counts as free.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                sock.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:  # other errors (no IPv6) say nothing
                return False
    return True


def port_holder(port: int, *, except_run: str | None = None) -> str | None:
    """Who holds `port` ("pid 123 (python -m http.server)"), or None when it is free
    or held by a process of the devstack run `except_run` (the service itself)."""
    return None if is_free(port) else taken_by(port, except_run=except_run)


def taken_by(port: int, *, except_run: str | None = None) -> str | None:
    """`port_holder` for a port already found taken (`is_free` said no): the slow part."""
    holder = who_holds(port)
    if holder is None:
        return "another process"
    if except_run is not None and _run_id_of(holder.pid) == except_run:
        return None
    return str(holder)


def _run_id_of(pid: int) -> str | None:
    """The devstack run a process belongs to, from the marker in its environment."""
    import psutil

    from devstack.runtime.reaper import RUN_ID_VAR

    try:
        return psutil.Process(pid).environ().get(RUN_ID_VAR)
    except psutil.Error:
        return None


def who_holds(port: int) -> Holder | None:
    """The process listening on TCP `port` (v4 or v6), or None if none we can see."""
    import psutil

    try:
        pids = _listeners(psutil.net_connections(kind="tcp"), port)
    except psutil.AccessDenied:
        pids = None
    if not pids:  # unreadable, or a socket without an owner we may see
        pids = _scan_processes(port)
    for pid in sorted(pids):  # forked servers share the socket: the oldest pid first
        with contextlib.suppress(psutil.Error):
            return _holder(psutil.Process(pid))
    return None


def _listeners(connections: list[Any], port: int) -> set[int]:
    return {conn.pid for conn in connections if conn.pid and _listening(conn, port)}


def _scan_processes(port: int) -> set[int]:
    """The slow way: every process we may inspect, one at a time."""
    import psutil

    pids = set()
    for proc in psutil.process_iter():
        # `net_connections` since psutil 6; `connections` before.
        connections = getattr(proc, "net_connections", None) or proc.connections
        with contextlib.suppress(psutil.Error):
            if any(_listening(conn, port) for conn in connections("tcp")):
                pids.add(proc.pid)
    return pids


def _listening(conn: Any, port: int) -> bool:
    import psutil

    return conn.status == psutil.CONN_LISTEN and bool(conn.laddr) and conn.laddr.port == port


def _holder(proc: Any) -> Holder:
    from devstack.runtime.reaper import command_of

    return Holder(proc.pid, command_of(proc))
