"""The fast start (issue 16): a second plain `devstack up` spawns the services that
depend on nothing from the plan the first one kept, before the rest of devstack is
imported, and the supervisor adopts them with every guarantee of an ordinary spawn."""

from __future__ import annotations

import marshal
import os
import re
import signal
import sys
from pathlib import Path

from tests.support import Running, clean_env, make_repo, processes_under, run_cli, wait_until

PY = sys.executable
LINES = 3000  # printed at once, before the supervisor runs: more than a pipe holds

SERVICE = """\
import os, sys, time
name, count = sys.argv[1], int(sys.argv[2])
print(name, "pid", os.getpid(), "ppid", os.getppid(), "pgid", os.getpgid(0), flush=True)
sys.stdout.write("".join(f"{name} line {i:05d}\\n" for i in range(count)))
sys.stdout.flush()
print(name, "printed all", flush=True)
time.sleep(3600)
"""


def said(lines: list[str], name: str) -> list[str]:
    """What service `name` printed, without the prefix."""
    pattern = re.compile(rf"^{name} +\| (.*)$")
    return [match[1] for line in lines if (match := pattern.match(line))]


def starts(lines: list[str], name: str) -> list[int]:
    """The pids of `name`'s "started (pid N)" lines."""
    pattern = re.compile(rf"^{name} +▸ started \(pid (\d+)\)$")
    return [int(match[1]) for line in lines if (match := pattern.match(line))]


def cgroup(pid: int) -> str:
    """The cgroup v2 line of /proc/PID/cgroup (empty where there is none)."""
    lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    return next((line for line in lines if line.startswith("0::")), "")


def stack(repo: Path) -> None:
    (repo / "web").mkdir(exist_ok=True)
    make_repo(
        repo,
        f"""
        services:
          api: {{cmd: {PY} svc.py api {LINES}}}
          worker: {{cmd: {PY} ../svc.py worker 1, cwd: web}}
          later: {{cmd: {PY} svc.py later 1, depends_on: {{api: {{condition: started}}}}}}
        """,
        {"svc.py": SERVICE},
    )


def first_run(repo: Path, env: dict[str, str] | None = None) -> None:
    """A plain `up` that keeps the plan, ended once everything has started."""
    up = Running("up", cwd=repo, env=env)
    try:
        up.wait_for_each(
            r"api +\| api printed all", r"worker +\| worker printed all", r"later +\| later"
        )
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()
    assert (repo / ".devstack" / "plan").stat().st_mode & 0o777 == 0o600


def test_the_first_wave_is_adopted_with_every_line_in_order(repo: Path) -> None:
    stack(repo)
    first_run(repo)
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(
            r"api +\| api printed all", r"worker +\| worker printed all", r"later +\| later"
        )
        lines = up.output().splitlines()
        for name in ("api", "worker"):
            [pid] = starts(lines, name)  # adopted, not spawned again
            # devstack's own child, in a session of its own, in the run's cgroup if any
            assert f"{name} pid {pid} ppid {up.pid} pgid {pid}" in said(lines, name)
            assert cgroup(pid) == cgroup(up.pid)
        expected = [f"api line {i:05d}" for i in range(LINES)]
        assert said(lines, "api")[1:-1] == expected  # none lost, torn or out of order
        log = (repo / ".devstack" / "logs" / "api.log").read_text().splitlines()
        assert log[-LINES - 1 :] == [*expected, "api printed all"]
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


def test_a_plan_entry_that_differs_is_stopped_and_spawned_afresh(repo: Path) -> None:
    stack(repo)
    first_run(repo)
    path = repo / ".devstack" / "plan"
    plan = marshal.loads(path.read_bytes())
    [api] = [service for service in plan["services"] if service["name"] == "api"]
    api["argv"] = [PY, "svc.py", "tampered", "1"]  # the key still holds
    path.write_bytes(marshal.dumps(plan))
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(r"api +\| api printed all", r"worker +\| worker printed all")
        starts = [
            line
            for line in up.output().splitlines()
            if line.startswith("api ") and "started" in line
        ]
        assert len(starts) == 2, up.output()  # the plan's, stopped; then the real one
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


def test_sigkill_of_devstack_leaves_nothing_of_the_first_wave(repo: Path) -> None:
    stack(repo)
    first_run(repo)
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(r"api +\| api printed all", r"worker +\| worker printed all")
        up.send(signal.SIGKILL)
        up.wait()
        wait_until(lambda: not processes_under(repo), what="the guardian ends the services")
    finally:
        up.close()


def test_a_check_that_fails_now_stops_what_the_plan_started(repo: Path) -> None:
    stack(repo)
    first_run(repo)
    # Outside the plan's key: a service's cwd, renamed since the last run.
    os.rename(repo / "web", repo / "elsewhere")
    result = run_cli("up", cwd=repo)
    assert result.returncode != 0
    assert "does not exist" in result.stderr, result.stderr
    assert "nothing started" not in result.stderr
    assert "stopped api (started from the kept plan)" in result.stderr, result.stderr


def test_a_changed_env_file_means_an_ordinary_start(repo: Path) -> None:
    stack(repo)
    first_run(repo)
    path = repo / ".devstack" / "plan"
    plan = marshal.loads(path.read_bytes())
    plan["services"] = [{**s, "argv": [PY, "svc.py", "tampered", "1"]} for s in plan["services"]]
    path.write_bytes(marshal.dumps(plan))
    (repo / ".env").write_text("ANYTHING=1\n")  # an env file of the key, absent before
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(r"api +\| api printed all", r"worker +\| worker printed all")
        assert "tampered" not in up.output()  # the plan was not used
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


TOKEN = """\
import os, time
print("token", os.environ["API_TOKEN"], flush=True)
time.sleep(3600)
"""


def test_a_shell_variable_reaches_the_service_but_never_the_plan(repo: Path) -> None:
    secret = "tok-3f9a1c-from-the-shell"
    make_repo(
        repo,
        f"""
        services:
          api: {{cmd: {PY} token.py, env: [API_TOKEN]}}
        """,
        {"token.py": TOKEN},
    )
    env = clean_env(API_TOKEN=secret)
    up = Running("up", cwd=repo, env=env)
    try:
        up.wait_for(rf"api +\| token {secret}$")
        up.interrupt()
        up.wait()
    finally:
        up.close()
    kept = (repo / ".devstack" / "plan").read_bytes()
    assert secret.encode() not in kept
    [api] = marshal.loads(kept)["services"]  # planned: its value is taken from the shell
    assert "API_TOKEN" in api["shell"] and "API_TOKEN" not in api["env"]
    up = Running("up", cwd=repo, env=env)
    try:
        up.wait_for(rf"api +\| token {secret}$")
        assert len(starts(up.output().splitlines(), "api")) == 1
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()
