"""The platform switch reaches the real CLI: on Linux `make test` runs this test as
[linux] and as [portable] (DEVSTACK_PORTABLE=1, set by tests/integration/conftest.py),
and devstack then takes macOS's code paths (issue 15)."""

from __future__ import annotations

from pathlib import Path

from tests.support import make_repo, run_cli


def test_doctor_says_once_which_guarantee_is_weaker_on_the_portable_paths(
    repo: Path, devstack_platform: str
) -> None:
    make_repo(repo, "services:\n  a: {cmd: python3 -V}\n  b: {cmd: python3 -V}\n")
    result = run_cli("doctor", cwd=repo)
    # The parameter, not the environment: a [portable] run that did not reach the CLI fails.
    portable = devstack_platform == "portable"
    assert result.returncode == 0
    assert result.stdout.strip() == "no problems found in 2 services"  # a note, not a problem
    assert result.stderr.count("note:") == (1 if portable else 0)
    if portable:
        assert "clears its environment (env -i) before devstack has recorded it" in result.stderr
