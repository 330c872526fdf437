"""`devstack up`: parallel start, prefixed output, selection, dependency order, probes, ports."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from tests.support import Running, free_port, held_port, make_repo, run_cli

PY = sys.executable


def test_parallel_start_and_prefixed_output_of_both_streams(repo: Path) -> None:
    # Opening a FIFO blocks until the other end opens it: both ends finish only if
    # the two services run at the same time.
    os.mkfifo(repo / "rendezvous")
    make_repo(
        repo,
        """
        services:
          a:
            cmd: echo "a to stdout"; echo "a to stderr" >&2; echo hello > rendezvous
          longer:
            cmd: read word < rendezvous; echo "longer got $word" >&2
        """,
    )
    result = run_cli("up", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert "a      | a to stdout" in lines
    assert "a      | a to stderr" in lines
    assert "longer | longer got hello" in lines
    assert any(line.startswith("a ") and "exited 0" in line for line in lines)


def test_selection_brings_dependencies_no_deps_and_except(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          db: {cmd: echo db ran}
          api: {cmd: echo api ran, depends_on: {db: {condition: started}}}
          web: {cmd: echo web ran, depends_on: [api]}
          mail: {cmd: echo mail ran, autostart: false}
        """,
    )

    def ran(*args: str) -> set[str]:
        result = run_cli("up", *args, cwd=repo)
        assert result.returncode == 0, result.stdout + result.stderr
        return {word for word in ("db", "api", "web", "mail") if f"{word} ran" in result.stdout}

    assert ran() == {"db", "api", "web"}  # mail has autostart: false
    assert ran("api") == {"db", "api"}
    assert ran("web", "--no-deps") == {"web"}
    assert ran("--except", "web", "db") == {"api"}
    assert ran("mail") == {"mail"}


def test_unknown_service_name_suggests_the_closest(repo: Path) -> None:
    make_repo(repo, "services:\n  jobs: {cmd: 'true'}\n")
    result = run_cli("up", "jbos", cwd=repo)
    assert result.returncode == 2
    assert "unknown service 'jbos'" in result.stderr
    assert "did you mean 'jobs'?" in result.stderr
    assert result.stdout == ""


def test_dependents_start_in_order_of_readiness_and_conditions(repo: Path) -> None:
    make_repo(
        repo,
        f"""
        services:
          db:
            cmd: echo booting; {PY} -c 'import time; time.sleep(0.3)'; echo accepting; exec sleep 30
            ready: {{log: "accept\\\\w+", timeout: 10}}
          migrate:
            cmd: echo migrating
            depends_on: [db]
          api:
            cmd: echo api up; exec sleep 30
            depends_on:
              db: {{condition: ready}}
              migrate: {{condition: completed}}
          worker:
            cmd: echo worker up; exec sleep 30
            depends_on: {{api: {{condition: started}}}}
        """,
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for(r"^api +▸ waiting for db \(ready\), migrate \(completed\)")
        up.wait_for(r"^db +\| accepting")
        up.wait_for(r"^db +▸ ready")
        up.wait_for(r"^migrate +▸ exited 0")
        up.wait_for(r"^api +\| api up")
        up.wait_for(r"^worker +\| worker up")
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()


def test_each_probe_kind_lets_its_dependent_start(repo: Path) -> None:
    http_port, tcp_port = free_port(), free_port()
    serve_tcp = (
        "import socket, sys, time; s = socket.socket();"
        " s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen(); time.sleep(30)"
    )
    make_repo(
        repo,
        f"""
        services:
          web:
            cmd: [{PY}, -m, http.server, "{http_port}", --bind, 127.0.0.1]
            ready: {{http: "http://127.0.0.1:{http_port}/", timeout: 20}}
          socket:
            cmd: [{PY}, -c, "{serve_tcp}", "{tcp_port}"]
            ready: {{tcp: "127.0.0.1:{tcp_port}", timeout: 20}}
          flag:
            cmd: touch made.flag; exec sleep 30
            ready: {{cmd: test -f made.flag && test "$FLAG_OK" = yes, timeout: 20}}
            env: [FLAG_OK=yes]
          after:
            cmd: echo all ready; exec sleep 30
            depends_on: [web, socket, flag]
        """,
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for(r"^after +\| all ready")
        output = up.output()
        for name in ("web", "socket", "flag"):
            assert output.index(f"{name.ljust(6)} ▸ ready") < output.index("after  | all ready")
        up.interrupt()
        assert up.wait() == 130
    finally:
        up.close()


def test_probe_timeout_says_what_it_saw_and_dependents_keep_waiting(repo: Path) -> None:
    make_repo(
        repo,
        """
        services:
          db:
            cmd: echo still booting; exec sleep 30
            ready: {log: "accepting connections", timeout: 0.3}
          api:
            cmd: echo api up
            depends_on: [db]
        """,
    )
    up = Running("up", cwd=repo)
    try:
        up.wait_for(
            r"^db +▸ not ready after 0.3s: no output line matched 'accepting connections'"
            r" \(last saw: 'still booting'\)"
        )
        up.wait_for(r"^api +▸ still waiting for db to be ready")
        up.interrupt()
        assert up.wait() == 130
        assert "api up" not in up.output()
    finally:
        up.close()


def test_a_port_in_the_command_is_checked_before_start(repo: Path) -> None:
    """Issue 12 item 6: `next dev -p 3000` binds 3000 as surely as `port: 3000` does."""
    with held_port() as port:
        make_repo(
            repo,
            f"""
            services:
              web: {{cmd: 'echo web started -p {port}'}}
              other: {{cmd: echo other ran}}
            """,
        )
        result = run_cli("up", cwd=repo)
    assert result.returncode == 1
    assert f"web: port {port} is in use by pid {os.getpid()}" in result.stderr
    assert "change the port in `cmd`" in result.stderr
    assert "nothing started" in result.stderr
    assert "other ran" not in result.stdout
    assert "web started" not in result.stdout


def test_a_script_without_a_shebang_runs_as_under_a_shell(repo: Path) -> None:
    """A repo script with no `#!` line runs under sh, as it did before commands were
    exec'd directly (exec alone fails with "Exec format error")."""
    make_repo(
        repo, "services:\n  tool: {cmd: ./bin/tool hello}\n", {"bin/tool": 'echo "tool says $1"\n'}
    )
    (repo / "bin" / "tool").chmod(0o755)
    result = run_cli("up", cwd=repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tool | tool says hello" in result.stdout
