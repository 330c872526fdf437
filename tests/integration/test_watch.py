"""`devstack up` restarts on change: watched files, env files and devstack.yaml.

Proving that something did *not* restart needs an event to wait for: after the
changes that must do nothing, `fence` edits a file only the `marker` service
watches and waits for its new instance; batches are handled in order, so by then
any restart the earlier changes caused would have been printed.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import Running, free_port, make_repo

# Each instance says which run it is and what its watched file holds.
RUNNER = """
import os, pathlib, sys, time
count = pathlib.Path(os.environ["DEVSTACK_SERVICE"] + ".runs")
runs = int(count.read_text()) + 1 if count.exists() else 1
count.write_text(str(runs))
print(os.environ["DEVSTACK_SERVICE"], "run", runs, *sys.argv[1:], flush=True)
time.sleep(600)
"""

MARKER = "  marker: {cmd: python ../runner.py, cwd: m, watch: [marker.txt]}\n"


def wait_all(up: Running, *patterns: str) -> None:
    """Wait for a line matching each pattern, in whatever order they come."""
    remaining = set(patterns)
    while remaining:
        line = up.wait_for("|".join(f"(?:{p})" for p in remaining)).string
        remaining = {p for p in remaining if not re.search(p, line)}


def watching(up: Running, *patterns: str) -> None:
    """Wait until the watcher is live and the lines `patterns` came, in any order."""
    wait_all(up, r"watching for changes:", *patterns)


def fence(up: Running, repo: Path, n: int) -> None:
    """Edit what only `marker` watches; wait until its new instance runs."""
    (repo / "m" / "marker.txt").write_text(f"fence {n}\n")
    up.wait_for(r"^marker +▸ restarting: marker\.txt changed$")
    up.wait_for(rf"^marker +\| marker run {n + 1}\b")


def restarts(up: Running, name: str) -> list[str]:
    return [
        line
        for line in up.output().splitlines()
        if line.startswith(f"{name} ") and "▸ restarting:" in line
    ]


def test_a_task_edit_restarts_only_the_worker_once_and_noise_restarts_nothing(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          jobs: {cmd: python ../../runner.py, cwd: services/jobs, watch: [tasks/**/*.py, worker/]}
          api: {cmd: python ../../runner.py, cwd: services/api, watch: [app.py]}
        """
        + MARKER,
        {
            "runner.py": RUNNER,
            ".gitignore": "generated/\n",
            "services/jobs/tasks/send.py": "A = 1\n",
            "services/jobs/tasks/old/retired.py": "B = 1\n",
            "services/jobs/tasks/scratch/notes.txt": "",  # there before (inotify's watch too)
            "services/jobs/worker/__init__.py": "",
            "services/api/app.py": "",
            "m/marker.txt": "",
        },
    )
    jobs = repo / "services" / "jobs"
    up = Running("up", cwd=repo)
    try:
        watching(up, r"^jobs +\| jobs run 1", r"^marker +\| marker run 1")
        # Noise: unchanged rewrites, and paths that are ignored although the globs match.
        (jobs / "tasks" / "send.py").write_text("A = 1\n")
        (jobs / "tasks" / "send.py").touch()
        for ignored in ("node_modules/x/y.py", "generated/g.py", "__pycache__/s.py", ".#send.py"):
            path = jobs / "tasks" / ignored
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("X = 1\n")
        fence(up, repo, 1)
        assert restarts(up, "jobs") == []

        (jobs / "tasks" / "send.py").write_text("A = 2\n")
        up.wait_for(r"^jobs +▸ restarting: tasks/send\.py changed$")
        up.wait_for(r"^jobs +\| jobs run 2")

        # A burst, as a `git checkout` writes it: one restart for all 500 files.
        for i in range(500):
            (jobs / "worker" / f"w{i:03}.py").write_text(f"N = {i}\n")
        up.wait_for(r"^jobs +▸ restarting: worker/w000\.py changed \(\+499 more\)$")
        up.wait_for(r"^jobs +\| jobs run 3")
        fence(up, repo, 2)
        assert len(restarts(up, "jobs")) == 2

        # A folder moved away is one event for the folder, which `tasks/**/*.py` does
        # not match; the files that were below it are what changed.
        (jobs / "tasks" / "old").rename(repo / "attic")
        up.wait_for(r"^jobs +▸ restarting: tasks/old/retired\.py changed$")
        up.wait_for(r"^jobs +\| jobs run 4")
        assert restarts(up, "api") == []

        # A .gitignore edited under the running stack rules from then on (a child
        # compiles it); a line git cannot read (a lone `!`) matches nothing.
        (repo / ".gitignore").write_text("generated/\n!\nscratch/\n")
        fence(up, repo, 3)  # the edit's batch, rules and all, is handled before the fence's
        (jobs / "tasks" / "scratch" / "s.py").write_text("S = 1\n")
        fence(up, repo, 4)
        assert len(restarts(up, "jobs")) == 3  # scratch/ is ignored now
        assert "cannot read the watch rules" not in up.output()
    finally:
        up.interrupt()
        up.wait()
        up.close()


def test_a_crashed_service_starts_again_after_a_fix(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          jobs: {cmd: python main.py, cwd: jobs, watch: ["*.py"]}
        """,
        {"jobs/main.py": "print('broken'\n"},
    )
    up = Running("up", cwd=repo)
    try:
        watching(up, r"^jobs +▸ exited 1, waiting for a change to restart")
        (repo / "jobs" / "main.py").write_text(
            "import time\nprint('fixed', flush=True)\ntime.sleep(600)\n"
        )
        up.wait_for(r"^jobs +▸ restarting: main\.py changed$")
        up.wait_for(r"^jobs +\| fixed")
    finally:
        up.interrupt()
        up.wait()
        up.close()


def test_an_env_edit_restarts_exactly_the_services_that_receive_the_variable(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          api: {cmd: 'python runner.py ${DATABASE_URL##*@}', env: [DATABASE_URL]}
          jobs: {cmd: python runner.py, env: [QUEUE]}
          web: {cmd: python runner.py}
        """,
        {
            "runner.py": RUNNER,
            ".env": "DATABASE_URL=postgres://app:hunter2@db-one/app\nQUEUE=default\n",
            ".gitignore": ".env\n",
        },
    )
    up = Running("up", cwd=repo)
    try:
        watching(up, r"^api +\| api run 1")
        (repo / ".env").write_text("DATABASE_URL=postgres://app:s3cret@db-two/app\nQUEUE=default\n")
        up.wait_for(r"\.env changed \(DATABASE_URL\)$")
        up.wait_for(r"^api +▸ restarting: env changed \(DATABASE_URL\)$")
        up.wait_for(r"^api +\| api run 2 db-two/app")
        # A second edit that concerns only jobs: by its restart, the first was handled.
        (repo / ".env").write_text("DATABASE_URL=postgres://app:s3cret@db-two/app\nQUEUE=bulk\n")
        up.wait_for(r"^jobs +▸ restarting: env changed \(QUEUE\)$")
        up.wait_for(r"^jobs +\| jobs run 2")
        assert len(restarts(up, "api")) == 1 and len(restarts(up, "jobs")) == 1
        assert restarts(up, "web") == []
        devstack_lines = [line for line in up.output().splitlines() if "changed" in line]
        assert not any("s3cret" in line or "hunter2" in line for line in devstack_lines)

        # An env file that no longer parses: reported, and the stack keeps going.
        (repo / ".env").write_text("DATABASE_URL=${NOT_DEFINED_ANYWHERE}\nQUEUE=bulk\n")
        up.wait_for(r"keeping the last good config")
        up.wait_for(r"\.env:1")
    finally:
        up.interrupt()
        assert up.wait() == 130
        up.close()
    stopped = [line.split()[0] for line in up.output().splitlines() if line.endswith("▸ stopped")]
    assert sorted(stopped) == ["api", "jobs", "web"]


def test_a_config_edit_adds_removes_and_restarts_and_an_invalid_one_is_kept_out(
    repo: Path,
) -> None:
    config = """
        services:
          a: {cmd: python runner.py one}
          b: {cmd: python runner.py one}
          c: {cmd: python runner.py one}
        """
    make_repo(repo, config, {"runner.py": RUNNER})
    up = Running("up", cwd=repo)
    try:
        watching(up, r"^c +\| c run 1 one")
        make_repo(
            repo,
            """
            services:
              a: {cmd: python runner.py one}
              c: {cmd: python runner.py two}
              d: {cmd: python runner.py one}
            """,
        )
        up.wait_for(r"^b +▸ removed from devstack\.yaml, stopping")
        wait_all(
            up,
            r"^c +▸ restarting: devstack\.yaml changed \(cmd\)$",
            r"^c +\| c run 2 two",
            r"^d +\| d run 1 one",
        )
        assert restarts(up, "a") == []

        (repo / "devstack.yaml").write_text(
            "services:\n  a: {cmd: python runner.py, restart: sometimes}\n"
        )
        up.wait_for(r"devstack\.yaml changed but cannot be used, keeping the last good config")
        up.wait_for(r"devstack\.yaml:2.*restart")
    finally:
        up.interrupt()
        assert up.wait() == 130
        up.close()
    stopped = [line.split()[0] for line in up.output().splitlines() if line.endswith("▸ stopped")]
    assert sorted(stopped) == ["a", "b", "c", "d"]


SERVER = """
import os, signal, socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(os.environ["PORT"])))
sock.listen()
def slow_exit(*_):
    time.sleep(0.3)  # still holding the port while it shuts down
    sys.exit(0)
signal.signal(signal.SIGTERM, slow_exit)
print("serving", open("version.txt").read().strip(), flush=True)
while True:
    time.sleep(600)
"""


def test_a_service_holding_a_port_never_runs_twice(repo: Path) -> None:
    port = free_port()
    make_repo(
        repo,
        f"""
        services:
          server: {{cmd: python server.py, port: {port}, watch: [version.txt]}}
        """,
        {"server.py": SERVER, "version.txt": "0\n"},
    )
    up = Running("up", cwd=repo)
    try:
        watching(up, r"^server +\| serving 0")
        (repo / "version.txt").write_text("1\n")
        up.wait_for(r"^server +▸ restarting: version\.txt changed")
        # Changes while the old instance still holds the port join the coming start.
        (repo / "version.txt").write_text("2\n")
        (repo / "version.txt").write_text("3\n")
        up.wait_for(r"^server +\| serving 3")
    finally:
        up.interrupt()
        up.wait()
        up.close()
    out = up.output()
    assert "in use" not in out and "Address already in use" not in out
    serving = [line for line in out.splitlines() if "| serving" in line]
    assert len(serving) == len(restarts(up, "server")) + 1


def test_a_watch_pattern_devstack_cannot_read_is_said_with_its_line(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          web:
            cmd: echo web up; exec sleep 60
            watch: ["src/", "notes\\\\"]
        """,
    )
    (repo / "src").mkdir()
    up = Running("up", cwd=repo)
    try:
        watching(
            up,
            r"^web +\| web up",
            r"devstack\.yaml:3:\d+: web\.watch pattern 'notes\\' is not a glob devstack can"
            r" read, so it matches nothing; hint: write it as a \.gitignore line",
        )
        (repo / "src" / "app.py").write_text("A = 1\n")
        up.wait_for(r"^web +▸ restarting: src/app\.py changed$")  # the rest still works
    finally:
        up.interrupt()
        up.wait()
        up.close()
