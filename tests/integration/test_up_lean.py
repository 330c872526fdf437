"""What a running `devstack up` keeps out of its memory (runtime/lean.py, issue 16), on
the ordinary start and the fast start, and the https ready-probe that works without
asyncio's TLS."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import trustme

from tests.support import Running, clean_env, free_port, make_repo

PY = sys.executable
# Imported only where they are used: TLS (an https probe), OpenSSL's hashes, the
# watchfiles package around its Rust part (anyio, multiprocessing), psutil (a stop's
# sweep, the UI), tempfile (a socket path too long for .devstack).
KEPT_OUT = ("_ssl", "_hashlib", "anyio", "watchfiles.main", "multiprocessing", "psutil", "tempfile")
OPENSSL = re.compile(r"/lib(ssl|crypto)\.so")
IMPORT_TIME = re.compile(r"^import time: +\d+ \| +\d+ \| +(\S+)$")


def imported(lines: list[str]) -> set[str]:
    """The modules `python -X importtime` reported before `up` began to stop: what it
    imported to start and to idle (a `None` in sys.modules, lean's mark, shows too,
    which is why `_ssl` is looked for, not `ssl`)."""
    names: set[str] = set()
    for line in lines:
        if "stopping all services" in line:
            break
        if match := IMPORT_TIME.match(line):
            names.add(match[1])
    return names


def test_a_running_up_has_not_imported_what_it_does_not_use(repo: Path) -> None:
    (repo / "src").mkdir()
    make_repo(
        repo,
        """
        services:
          web: {cmd: echo web up; exec sleep 60, watch: [src/]}
          worker: {cmd: echo worker up; exec sleep 60}
        """,
    )
    for start in ("ordinary start", "fast start"):  # the second runs from the kept plan
        up = Running("up", cwd=repo, env=clean_env(PYTHONPROFILEIMPORTTIME="1"))
        try:
            up.wait_for_each(r"^web +\| web up", r"^worker +\| worker up")
            up.wait_for(r"watching for changes")
            maps = Path(f"/proc/{up.pid}/maps").read_text()
            up.interrupt()
            assert up.wait() == 130
        finally:
            up.close()
        modules = imported(up.lines)
        assert {"asyncio", "devstack.core.routing", "pathspec"} <= modules, start  # the watcher's
        assert sorted(set(KEPT_OUT) & modules) == [], start
        assert OPENSSL.search(maps) is None, start
    assert "fast start" in start


TLS_SERVER = """\
import http.server, ssl, sys
handler = http.server.SimpleHTTPRequestHandler  # 200 for /, the folder listed
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), handler)
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain("server.pem")
server.socket = tls.wrap_socket(server.socket, server_side=True)
print("serving", flush=True)
server.serve_forever()
"""


def test_an_https_ready_probe_of_a_self_signed_server(repo: Path) -> None:
    port = free_port()
    make_repo(
        repo,
        f"""
        services:
          tls:
            cmd: [{PY}, server.py, "{port}"]
            ready: {{http: "https://localhost:{port}/", timeout: 20}}
          after:
            cmd: echo after tls; exec sleep 60
            depends_on: [tls]
        """,
        {"server.py": TLS_SERVER},
    )
    certificate = trustme.CA().issue_cert("localhost", "127.0.0.1")
    certificate.private_key_and_cert_chain_pem.write_to_path(str(repo / "server.pem"))
    up = Running("up", cwd=repo)
    try:
        # The server speaks nothing but TLS: its log line is a request read through it.
        up.wait_for(r'^tls +\| .*"GET / HTTP/1.1" 200')
        up.wait_for(r"^tls +▸ ready")
        up.wait_for(r"^after +\| after tls")
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()
