"""`up -d`'s pieces: the child's command line, the wait on the pipe, up.log's rotation."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from devstack.commands import up
from devstack.core.config import parse_project
from devstack.core.errors import DevstackError
from devstack.runtime import detach

CONFIG = """
services:
  api: {cmd: serve, ready: {http: "http://127.0.0.1:1/", timeout: 7}}
  jobs: {cmd: work, ready: {log: ready, timeout: 5}}
  mail: {cmd: catch}
"""
# Options of `up` that only the parent acts on, or that the child gets another way
# (`--ui` never: `up` refuses it together with -d).
NOT_FORWARDED = {"help", "detach", "ready_fd", "config_file", "ui"}


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("-f", "--file", dest="config_file")
    up.configure(parser)
    return parser.parse_args(argv)


def test_every_up_option_reaches_the_background_up(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    up.configure(parser)
    options = {action.dest for action in parser._actions} - NOT_FORWARDED
    assert options == set(detach.FORWARDED), "forward the new option in detach.child_argv"

    project = parse_project(CONFIG, tmp_path / "devstack.yaml")
    given = ("api", "--no-deps", "--except", "mail", "--filter", "!@v1/x", "--abort-on-exit",
             "--timestamps")  # fmt: skip
    args = parsed("-d", *given, "--env", "A=1 2", "-f", "x.yaml")
    argv = detach.child_argv(project, args, 7)
    assert argv[1:6] == ["-m", "devstack", "-f", str(tmp_path / "devstack.yaml"), "up"]
    again = parsed(*argv[6:])
    for option in detach.FORWARDED:
        assert getattr(again, option) == getattr(args, option), option
    assert (again.ready_fd, again.detach) == (7, False)


def test_the_wait_is_bounded_by_the_probes_in_turn(tmp_path: Path) -> None:
    project = parse_project(CONFIG, tmp_path / "devstack.yaml")
    assert detach.ready_timeout(project, ["api", "jobs", "mail"]) == detach.BASE_WAIT + 12
    assert detach.ready_timeout(project, ["mail"]) == detach.BASE_WAIT


@pytest.mark.parametrize(
    ("writes", "close", "outcome"),
    [
        ([b'{"settled": true}\n'], False, "settled"),
        ([b'{"settled"', b": true}\n"], True, "settled"),
        ([b"half a line"], True, "ended"),  # the child died while writing
        ([], True, "ended"),  # the child died before its services settled
        ([], False, "timeout"),  # the child hangs: the parent does not
    ],
)
def test_the_parent_waits_for_the_line_the_end_or_the_bound(
    writes: list[bytes], close: bool, outcome: str
) -> None:
    read_end, write_end = os.pipe()
    try:

        def child() -> None:
            for chunk in writes:
                os.write(write_end, chunk)
            if close:
                os.close(write_end)

        writer = threading.Thread(target=child)
        writer.start()
        writer.join()
        assert detach._await_settled(read_end, timeout=0.2) == outcome
    finally:
        os.close(read_end)
        if not close:
            os.close(write_end)


def test_up_log_is_private_and_rotated_once_past_its_limit(tmp_path: Path) -> None:
    path = tmp_path / "up.log"
    out, err = detach._open_private(path), detach._open_private(path)
    try:
        log = detach.RotatingLog(path, limit=100, fds=(out, err))
        with pytest.raises(OSError):
            log.fileno()  # `Output` must write through `write`, where rotation happens
        log.write(b"a" * 60 + b"\n")
        log.write(b"b" * 60 + b"\n")  # past the limit: a new file first
        os.write(err, b"stderr follows\n")
        assert (tmp_path / "up.log.1").read_bytes() == b"a" * 60 + b"\n"
        assert path.read_bytes() == b"b" * 60 + b"\nstderr follows\n"
        assert {oct(p.stat().st_mode & 0o777) for p in tmp_path.iterdir()} == {"0o600"}
    finally:
        os.close(out)
        os.close(err)


def test_a_symlink_in_place_of_up_log_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("")
    (tmp_path / "up.log").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DevstackError, match=r"up\.log: it is a symbolic link") as caught:
        detach._open_log(tmp_path / "up.log")
    assert caught.value.problems[0].hint and "remove it" in caught.value.problems[0].hint
    assert (tmp_path / "elsewhere").read_text() == ""


def test_a_child_that_ended_first_is_reported_with_what_it_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log_path = tmp_path / "up.log"
    log_path.write_text("an earlier run's line\n")
    log = detach._open_private(log_path)
    start = os.fstat(log).st_size
    script = "import sys; print('error: devstack up is already running', file=sys.stderr); exit(1)"
    try:
        child = subprocess.Popen([sys.executable, "-c", script], stdout=log, stderr=log)
    finally:
        os.close(log)
    assert detach._report_early_end(child, log_path, start) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "devstack up ended before the stack was up (exited 1):",
        "  error: devstack up is already running",
    ]
