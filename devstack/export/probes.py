"""`ready:` probes as shell commands, for targets that can only run a command.

compose healthchecks and systemd's ExecStartPost run a command inside the service's
world, where devstack's own Python prober does not exist. An image has curl, wget,
python3 or node, rarely all: each check tries them in turn (a missing tool fails and
hands over to the next one, and a failing service fails all of them). A `log:` probe
has no command equivalent: None.
"""

from __future__ import annotations

import math
import shlex
from urllib.parse import urlsplit

from devstack.core.model import ReadyProbe

_PY_HTTP = "import sys, urllib.request as u; u.urlopen(sys.argv[1], timeout=5)"
_NODE_HTTP = "fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
_PY_TCP = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)"
_NODE_TCP = (
    "require('net').connect(+process.argv[2], process.argv[1])"
    ".on('connect', () => process.exit(0)).on('error', () => process.exit(1))"
)


def shell_check(probe: ReadyProbe) -> str | None:
    """One `sh -c` command that exits 0 when the probe passes, or None (a `log:` probe)."""
    if probe.kind == "cmd":
        return probe.target
    if probe.kind == "http":
        url = shlex.quote(probe.target)
        return " || ".join(
            [
                f"curl -fsS -o /dev/null {url}",
                f"wget -q -O /dev/null {url}",
                f"python3 -c {shlex.quote(_PY_HTTP)} {url}",
                f"node -e {shlex.quote(_NODE_HTTP)} - {url}",
            ]
        )
    if probe.kind == "tcp":
        host, port = tcp_address(probe.target)
        where = f"{shlex.quote(host)} {port}"
        return " || ".join(
            [
                f"nc -z {where}",
                f"python3 -c {shlex.quote(_PY_TCP)} {where}",
                f"node -e {shlex.quote(_NODE_TCP)} - {where}",
            ]
        )
    return None


def tcp_address(target: str) -> tuple[str, int]:
    """`host:port` (or `[::1]:port`, or a bare port) as devstack's tcp probe reads it."""
    host, _, port = target.rpartition(":")
    return (host.strip("[]") or "127.0.0.1"), int(port)


def http_parts(url: str) -> tuple[str, int, str]:
    """(scheme, port, path with query) of an http probe's URL, for kubernetes' httpGet."""
    parts = urlsplit(url)
    scheme = parts.scheme.upper() or "HTTP"
    port = parts.port or (443 if scheme == "HTTPS" else 80)
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return scheme, port, path


def attempts(probe: ReadyProbe, period: float) -> int:
    """How many checks `period` apart fit in the probe's timeout (at least one)."""
    return max(1, math.ceil(probe.timeout / period))
