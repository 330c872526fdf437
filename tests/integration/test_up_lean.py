"""What a running `devstack up` keeps out of its memory (runtime/lean.py, issue 16), on
the ordinary start and the fast start, and the https ready-probe that works without
asyncio's TLS."""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import trustme

from tests.support import DEVSTACK, TIMEOUT, Running, clean_env, free_port, make_repo

PY = sys.executable
# Imported only where they are used: TLS (an https probe), OpenSSL's hashes, the
# watchfiles package around its Rust part (anyio, multiprocessing), psutil (a stop's
# sweep, the UI), tempfile (a socket path too long for .devstack); bz2 and lzma, which
# shutil imports for its archive formats (doctor's `which`, argparse's help width).
# And what only the checks need (devstack.yaml, the env files, the doctor, the
# command line), which a child process does, at the start and for each reload
# (runtime/checker.py).
KEPT_OUT = (
    "yaml",
    "argparse",
    "devstack.core.config",
    "devstack.core.doctor",
    "devstack.core.packages",
    # env resolution: the run's env arrives resolved, as data (core/envmodel.py); a
    # ready probe interpolates (core/plan.py) only a target with a `$` in it
    "devstack.core.plan",
    "devstack.core.envresolve",
    "devstack.core.interpolate",
    "devstack.core.frameworks",
    "devstack.core.turboenv",
    "devstack.core.envfile",
    "devstack.core.textfile",
    "devstack.commands",
    "pickle",  # the checked run is read with _pickle's loads (runtime/checker.py)
    "pathspec",  # watch globs and .gitignore files are compiled by a child (core/globs.py)
    "ssl",
    "_ssl",
    "_hashlib",
    "anyio",
    "watchfiles.main",
    "multiprocessing",
    "psutil",
    "tempfile",
    "typing_extensions",
    "bz2",
    "lzma",
)
OPENSSL = re.compile(r"/lib(ssl|crypto)\.so")
# In every Python of the test's environment: SIGUSR2 writes the modules it has imported,
# then an empty line, to the descriptor DEVSTACK_TEST_MODULES_FD. (Not `python -v`: the
# child that checks the run, forked from `up`, prints its own imports, yaml and the
# config code, to the same stderr.)
MODULES_HOOK = """\
import os, signal, sys
_fd = os.environ.get("DEVSTACK_TEST_MODULES_FD")

def _dump(signum, frame):
    names = sorted(name for name, module in sys.modules.items() if module)
    os.write(int(_fd), ("\\n".join(names) + "\\n\\n").encode())

if _fd:
    signal.signal(signal.SIGUSR2, _dump)
"""


def idle_up(repo: Path) -> tuple[set[str], str]:
    """Run `devstack up` until it watches, then stop it: the modules it has imported to
    start and to idle (before the stop's own), and its memory map at that point."""
    hook = repo.parent / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(MODULES_HOOK)
    read_end, write_end = os.pipe()
    up = subprocess.Popen(
        [DEVSTACK, "up"],
        cwd=repo,
        env=clean_env(PYTHONPATH=str(hook), DEVSTACK_TEST_MODULES_FD=str(write_end)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        pass_fds=(write_end,),
    )
    os.close(write_end)
    listed = b""
    try:
        assert up.stdout is not None
        output, deadline = b"", time.monotonic() + TIMEOUT
        while b"watching for changes" not in output:
            left = deadline - time.monotonic()
            assert left > 0 and select.select([up.stdout], [], [], left)[0], output
            chunk = os.read(up.stdout.fileno(), 65536)
            assert chunk, output
            output += chunk
        maps = Path(f"/proc/{up.pid}/maps").read_text()
        os.kill(up.pid, signal.SIGUSR2)
        while not listed.endswith(b"\n\n"):
            left = deadline - time.monotonic()
            assert left > 0 and select.select([read_end], [], [], left)[0], listed
            listed += os.read(read_end, 65536)
        os.killpg(up.pid, signal.SIGINT)
        assert up.wait(TIMEOUT) == 130
    finally:
        os.close(read_end)
        if up.poll() is None:
            up.kill()
            up.wait(TIMEOUT)
        if up.stdout is not None:
            up.stdout.close()
    return set(listed.decode().split()), maps


def test_a_running_up_has_not_imported_what_it_does_not_use(repo: Path) -> None:
    (repo / "src").mkdir()
    (repo / ".gitignore").write_text("*.log\n!keep.log\n")
    (repo / "src" / ".gitignore").write_text("generated/\n")
    make_repo(
        repo,
        """
        services:
          web: {cmd: echo web up; exec sleep 60, watch: ["src/**/*.ts", "!src/skip.ts"]}
          worker: {cmd: sleep 60}  # a program the doctor looks up on PATH
          api: {cmd: echo api up; exec sleep 60, ready: {log: api up}}  # no `$`: no interpolate
        """,
    )
    for start in ("ordinary start", "fast start"):  # the second runs from the kept plan
        modules, maps = idle_up(repo)
        assert {"asyncio", "devstack.runtime.watcher", "devstack.core.globs"} <= modules, start
        assert sorted(set(KEPT_OUT) & modules) == [], start
        assert OPENSSL.search(maps) is None, start
    assert (repo / ".devstack" / "plan").exists()  # so the second start was the fast one


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
