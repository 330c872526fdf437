"""The fast start (issue 16): a second plain `devstack up` spawns the services that
depend on nothing from the plan the first one kept, before the rest of devstack is
imported, and the supervisor adopts them with every guarantee of an ordinary spawn.
A first `up` (no plan kept, or one an edit invalidated) spawns them the same way once
its checks passed, before asyncio and the supervisor are imported.

Every test here runs again on the portable platform (DEVSTACK_PORTABLE=1, macOS's
code paths: no pidfds, no subreaper, no cgroup), as `make test` does."""

from __future__ import annotations

import marshal
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from tests.support import Running, clean_env, make_repo, processes_under, run_cli, wait_until

pytestmark = pytest.mark.portable

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
    """The cgroup v2 line of /proc/PID/cgroup (empty where there is none: macOS)."""
    path = Path(f"/proc/{pid}/cgroup")
    lines = path.read_text().splitlines() if path.exists() else []
    return next((line for line in lines if line.startswith("0::")), "")


# Loaded by every Python the test starts (PYTHONPATH): an audit hook that notes each
# process devstack spawns, how (os.posix_spawn: the first wave; subprocess.Popen:
# asyncio's, or the guardian's), and whether asyncio was imported by then.
SPAWN_HOOK = """\
import os, sys
_log = os.environ.get("DEVSTACK_TEST_SPAWNS")

def _note(event, args):
    if event == "os.fork":  # the child that checks a first `up` (runtime/checker.py)
        with open(_log, "a") as file:
            file.write(f"{os.getpid()} {event} {'asyncio' in sys.modules} + True\\n")
    if event in ("os.posix_spawn", "subprocess.Popen"):
        env = args[2] if event == "os.posix_spawn" else args[3]
        service = (env or {}).get("DEVSTACK_SERVICE", "-")
        if "checker_main" in " ".join(map(str, args[1])):
            service = "+"  # the child that checks the run (runtime/checker.py)
        with open(_log, "a") as file:
            file.write(
                f"{os.getpid()} {event} {'asyncio' in sys.modules} {service}"
                f" {'devstack.runtime.checker' in sys.modules}\\n"
            )

if _log:
    sys.addaudithook(_note)
"""


def spawn_hook(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose Pythons note their spawns, and the file they note them in."""
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SPAWN_HOOK)
    log = tmp_path / "spawns.tsv"
    return clean_env(PYTHONPATH=str(hook), DEVSTACK_TEST_SPAWNS=str(log)), log


def spawns(log: Path, pid: int) -> dict[str, tuple[str, bool]]:
    """The services process `pid` spawned: name -> (how, asyncio imported by then)."""
    found: dict[str, tuple[str, bool]] = {}
    for line in log.read_text().splitlines():
        by, event, asyncio, service, _ = line.split(" ")
        if int(by) == pid and service not in "-+":  # "-": the guardian, "+": the checks
            found[service] = (event, asyncio == "True")
    return found


def spawned_before_the_checks(log: Path, pid: int) -> set[str]:
    """The services process `pid` spawned before it had devstack.yaml read and checked
    (runtime/checker.py not imported yet): those started from the kept plan."""
    found: set[str] = set()
    for line in log.read_text().splitlines():
        by, _, _, service, checking = line.split(" ")
        if int(by) == pid and service not in "-+" and checking == "False":
            found.add(service)
    return found


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
    first_run_of(
        repo,
        env,
        r"api +\| api printed all",
        r"worker +\| worker printed all",
        r"later +\| later",
    )


def first_run_of(repo: Path, env: dict[str, str] | None, *patterns: str) -> None:
    """A plain `up` that keeps the plan, ended once a line matched each of `patterns`."""
    up = Running("up", cwd=repo, env=env)
    try:
        up.wait_for_each(*patterns)
        wait_until((repo / ".devstack" / "plan").exists, what="the plan kept")
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()
    assert (repo / ".devstack" / "plan").stat().st_mode & 0o777 == 0o600


def assert_adopted_with_every_line(up: Running, repo: Path) -> None:
    """api and worker were adopted (one start each), are devstack's own children in a
    session of their own and in the run's cgroup if any, and api's lines printed before
    the loop ran are all there, in order, on the terminal and in its log file."""
    lines = up.output().splitlines()
    for name in ("api", "worker"):
        [pid] = starts(lines, name)  # adopted, not spawned again
        assert f"{name} pid {pid} ppid {up.pid} pgid {pid}" in said(lines, name)
        assert cgroup(pid) == cgroup(up.pid)
    expected = [f"api line {i:05d}" for i in range(LINES)]
    assert said(lines, "api")[1:-1] == expected  # none lost, torn or out of order
    log = (repo / ".devstack" / "logs" / "api.log").read_text().splitlines()
    assert log[-LINES - 1 :] == [*expected, "api printed all"]


def test_the_first_wave_is_adopted_with_every_line_in_order(repo: Path) -> None:
    stack(repo)
    first_run(repo)
    up = Running("up", cwd=repo)
    try:
        up.wait_for_each(
            r"api +\| api printed all", r"worker +\| worker printed all", r"later +\| later"
        )
        assert_adopted_with_every_line(up, repo)
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


def test_a_first_up_spawns_what_waits_for_nothing_before_asyncio(
    repo: Path, tmp_path: Path
) -> None:
    stack(repo)
    env, log = spawn_hook(tmp_path)
    up = Running("up", cwd=repo, env=env)  # no plan kept: a first `up` in this repo
    try:
        up.wait_for_each(
            r"api +\| api printed all", r"worker +\| worker printed all", r"later +\| later"
        )
        # The first wave before asyncio, as the kept plan's; `later` waits for api.
        assert spawns(log, up.pid) == {
            "api": ("os.posix_spawn", False),
            "worker": ("os.posix_spawn", False),
            "later": ("subprocess.Popen", True),
        }
        assert_adopted_with_every_line(up, repo)
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


def test_a_first_up_that_fails_a_check_starts_nothing(repo: Path, tmp_path: Path) -> None:
    stack(repo)
    os.rename(repo / "web", repo / "elsewhere")  # worker's cwd
    env, log = spawn_hook(tmp_path)
    result = run_cli("up", cwd=repo, env=env)
    assert result.returncode != 0
    assert "does not exist" in result.stderr, result.stderr
    assert "devstack up: nothing started" in result.stderr, result.stderr
    spawned = [line.split(" ")[3] for line in log.read_text().splitlines()]
    assert spawned == ["+"]  # the child that checked; not even the guardian


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
        wait_until((repo / ".devstack" / "plan").exists, what="the plan kept")
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


def test_a_secret_from_an_env_file_is_kept_as_its_place_and_starts_from_the_plan(
    repo: Path, tmp_path: Path
) -> None:
    """Most real stacks give every service a secret (create-t3-turbo's globalEnv
    AUTH_SECRET): the plan keeps where it stands in `.env`, never the value."""
    secret = "tok-51c0aa-in-the-env-file"
    make_repo(
        repo,
        f"""
        services:
          api: {{cmd: {PY} token.py, env: [API_TOKEN]}}
        """,
        {"token.py": TOKEN, ".env": f'# keys\nAPI_TOKEN="{secret}"\n'},
    )
    env, log = spawn_hook(tmp_path)
    first_run_of(repo, env, rf"api +\| token {secret}$")
    kept = (repo / ".devstack" / "plan").read_bytes()
    assert secret.encode() not in kept
    [api] = marshal.loads(kept)["services"]
    assert "API_TOKEN" not in api["env"] and api["spans"]["API_TOKEN"][0] == str(repo / ".env")
    up = Running("up", cwd=repo, env=env)
    try:
        up.wait_for(rf"api +\| token {secret}$")
        assert spawned_before_the_checks(log, up.pid) == {"api"}  # from the plan
        assert len(starts(up.output().splitlines(), "api")) == 1  # adopted: the same env
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


def test_a_service_the_plan_leaves_out_is_spawned_before_asyncio_too(
    repo: Path, tmp_path: Path
) -> None:
    secret = "tok-7d2e90-in-the-env-file"
    make_repo(
        repo,
        f"""
        services:
          api: {{cmd: {PY} token.py, env: {{API_TOKEN: "Bearer ${{SECRET_KEY}}"}}}}
          worker: {{cmd: {PY} svc.py worker 1}}
        """,
        {"token.py": TOKEN, "svc.py": SERVICE, ".env": f"SECRET_KEY={secret}\n"},
    )
    env, log = spawn_hook(tmp_path)
    first_run_of(repo, env, r"api +\| token ", r"worker +\| worker printed all")
    kept = (repo / ".devstack" / "plan").read_bytes()
    assert secret.encode() not in kept
    # api's value is built from a secret: stands nowhere verbatim, so api is left out
    assert [s["name"] for s in marshal.loads(kept)["services"]] == ["worker"]
    up = Running("up", cwd=repo, env=env)
    try:
        up.wait_for_each(rf"api +\| token Bearer {secret}$", r"worker +\| worker printed all")
        # worker from the plan, api once `up` resolved it: both before asyncio
        assert spawns(log, up.pid) == {
            "api": ("os.posix_spawn", False),
            "worker": ("os.posix_spawn", False),
        }
        lines = up.output().splitlines()
        assert len(starts(lines, "api")) == 1 and len(starts(lines, "worker")) == 1
        up.interrupt()
        assert up.wait() == 130, up.output()
    finally:
        up.close()


def test_a_control_socket_that_cannot_be_made_starts_nothing_from_the_plan(repo: Path) -> None:
    """A stack nobody can control must not run (issue 11 §2): the fast start binds the
    socket before its first spawn, or leaves it to the ordinary path, which says why."""
    stack(repo)
    first_run(repo)
    (repo / ".devstack" / "control.sock").mkdir()  # in the socket's place
    result = run_cli("up", cwd=repo)
    assert result.returncode == 1
    assert "cannot make the control socket" in result.stderr, result.stderr
    assert "printed all" not in result.stdout and "started" not in result.stdout
