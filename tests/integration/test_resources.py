"""Resource bounds of a running `up` under abuse (issue 11 §2, "How to prove it"):
a stalled `logs -f` client against a chatty service, and a flood of idle control
connections at a 256-fd limit. Each waits on progress it can see, never on time."""

from __future__ import annotations

import json
import resource
import socket
import subprocess
import sys
from pathlib import Path

import psutil

from devstack.runtime import control
from tests.support import DEVSTACK, clean_env, make_repo, run_cli, wait_until

MB = 1024 * 1024
# Writes 200-byte lines as fast as devstack takes them; every 10,000 lines it notes
# how many bytes it has written, so the test can wait for that, not for a time.
CHATTY = """\
import sys
line = "x" * 199 + "\\n"
written = 0
while True:
    sys.stdout.write(line * 10_000)
    written += 2_000_000
    with open("progress.tmp", "w") as f:
        f.write(str(written))
    import os; os.replace("progress.tmp", "progress")
"""


def start_up(repo: Path, **popen: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [DEVSTACK, "up"],
        cwd=repo,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # not collected: hundreds of MB go by
        stderr=subprocess.PIPE,
        start_new_session=True,
        **popen,  # type: ignore[arg-type]
    )


def wait_for_socket(repo: Path) -> None:
    wait_until(lambda: run_cli("ps", cwd=repo).returncode == 0, what="the control socket")


def written(repo: Path) -> int:
    try:
        return int((repo / "progress").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0


def stop(up: subprocess.Popen[bytes]) -> tuple[int, str]:
    up.send_signal(2)
    _, stderr = up.communicate(timeout=60)
    return up.returncode, stderr.decode(errors="replace")


def test_a_stalled_logs_follower_keeps_up_under_100_mb(repo: Path) -> None:
    make_repo(repo, f"services:\n  chatty: {{cmd: {sys.executable} chatty.py}}\n")
    (repo / "chatty.py").write_text(CHATTY)
    up = start_up(repo)
    try:
        wait_for_socket(repo)
        stalled = socket.socket(socket.AF_UNIX)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(str(repo / ".devstack" / "control.sock"))
        stalled.sendall(b'{"v": 1, "op": "logs-follow", "services": ["chatty"]}\n')
        # Offered 300 MB that it never reads: before issue 11, `up` buffered them all.
        start = written(repo)
        wait_until(lambda: written(repo) >= start + 300 * MB, timeout=300, what="300 MB")
        rss = psutil.Process(up.pid).memory_info().rss
        assert rss < 100 * MB, f"up grew to {rss / MB:.0f} MB"
        # When it reads at last, it learns how much it missed.
        stalled.settimeout(30)
        with stalled.makefile("rb") as replies:
            records = (json.loads(line) for line in replies)
            assert next(records)["ok"] is True
            assert any(record.get("skipped", 0) > 0 for record in records)
        stalled.close()
        print(f"up RSS after 300 MB offered to a stalled follower: {rss / MB:.1f} MB")
    finally:
        code, stderr = stop(up)
    assert code == 130
    assert "Traceback" not in stderr


def _hard_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))  # macOS's default soft limit


def test_300_idle_connections_at_256_fds_leave_ps_and_ctrl_c_working(repo: Path) -> None:
    make_repo(repo, "services:\n  api: {cmd: sleep 300}\n")
    up = start_up(repo, preexec_fn=_hard_fd_limit)
    idle: list[socket.socket] = []
    try:
        wait_for_socket(repo)
        for _ in range(300):
            idle.append(control.connect(repo, timeout=30))  # waits while the backlog is full
        ps = run_cli("ps", cwd=repo)
        assert ps.returncode == 0, ps.stderr
        assert "api" in ps.stdout
        fds = psutil.Process(up.pid).num_fds()
        assert fds < 256
        print(f"up holds {fds} fds with 300 idle connections open")
    finally:
        for sock in idle:
            sock.close()
        code, stderr = stop(up)
    assert code == 130, stderr
    assert "Traceback" not in stderr
