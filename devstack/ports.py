"""Who holds a TCP port: the pid and command line to name in "port 8000 is in use by ...".

The system-wide connection table is one call; where it is not readable as a whole
(macOS without root) or does not say which process owns a socket, each process we
may inspect is asked in turn.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Holder:
    """A process listening on a port."""

    pid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} ({self.command})"


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
