"""Which processes belong to a run (issue 11 §3): the census, the record, the cgroup."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.runtime import membership
from tests.support import wait_until


@pytest.fixture
def tree() -> Iterator[subprocess.Popen[bytes]]:
    """A service stand-in with a child of its own: `sh` running `sleep` in the background."""
    parent = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])
    yield parent
    for pid in membership.descendants_of(parent.pid):
        os.kill(pid, 9)
    parent.kill()
    parent.wait()


def test_the_census_says_which_service_each_descendant_came_from(
    tree: subprocess.Popen[bytes], tmp_path: Path
) -> None:
    wait_until(lambda: membership.descendants_of(tree.pid), what="the sleep to start")
    [sleep] = membership.descendants_of(tree.pid)
    census = membership.Census()
    assert census.take({tree.pid: "api"}) is True
    assert census.members[sleep].service == "api"
    assert census.of_service("api") == {tree.pid, sleep}
    assert census.take({tree.pid: "api"}) is False  # nothing changed
    # Its parent unknown now (as for an orphan adopted by devstack): it keeps "api".
    assert census.take({}) is False
    assert census.of_service("api") == {tree.pid, sleep}
    membership.write_record(tmp_path, "run-1", None, census.members)
    assert (tmp_path / "members.json").stat().st_mode & 0o777 == 0o600
    cgroup, members = membership.read_record(tmp_path)
    assert cgroup is None and set(members) == {tree.pid, sleep}
    assert sorted(membership.still_running(members)) == sorted([tree.pid, sleep])
    assert membership.still_running({sleep: members[sleep] + 1}) == []  # a reused pid


@pytest.mark.parametrize("text", ["", "not json", "[]", '{"processes": [[1]]}', '{"x": 1}'])
def test_a_bad_or_missing_record_names_nothing(tmp_path: Path, text: str) -> None:
    assert membership.read_record(tmp_path) == (None, {})
    (tmp_path / "members.json").write_text(text)
    cgroup, members = membership.read_record(tmp_path)
    assert cgroup is None and members == {}


def test_the_run_cgroup_where_one_is_delegated(tmp_path: Path) -> None:
    """Here (root in a container with cgroup v2) a cgroup is delegated; elsewhere
    `create` says None and the record stands in for it."""
    assert membership.RunCgroup.create("x", {"DEVSTACK_CGROUP": "0"}) is None
    parent = membership.own_cgroup()
    if parent is None or not os.access(parent / "cgroup.procs", os.W_OK):
        assert membership.RunCgroup.create("test") is None
        return
    probe = subprocess.Popen(
        [
            "python3",
            "-c",
            "import sys, time; from devstack.runtime import membership;"
            " c = membership.RunCgroup.create('unit-test'); print(c.path, flush=True);"
            " time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[3],
    )
    try:
        assert probe.stdout is not None
        path = Path(probe.stdout.readline().strip())
        assert path.name == "devstack-unit-test"
        assert membership.read_cgroup_pids(path) == {probe.pid}
        membership.kill_cgroup(path)  # what the guardian does
        assert probe.wait(30) == -9
        path.rmdir()
    finally:
        probe.kill()
        probe.wait()
