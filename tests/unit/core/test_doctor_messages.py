"""Issue 11 §1/§5: doctor's messages name the real cause and its fix, catch what would
stop the stack after doctor passed, and stay about the services being started."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from devstack.core.config import parse_project
from devstack.core.doctor import diagnose
from devstack.core.envresolve import resolve_project
from devstack.core.errors import DevstackError
from devstack.core.graph import select
from tests.unit.core.test_doctor import check


def rendered(root: Path, config: str, files: dict[str, str] | None = None) -> str:
    return "\n".join(p.render() for p in check(root, config, files))


def script(root: Path, name: str, body: bytes, mode: int = 0o755) -> None:
    (root / name).write_bytes(body)
    (root / name).chmod(mode)


def test_a_script_that_is_not_executable_is_not_called_missing(tmp_path: Path) -> None:
    script(tmp_path, "run.sh", b"#!/bin/sh\necho hi\n", 0o644)
    text = rendered(tmp_path, "services:\n  a: {cmd: ./run.sh}\n")
    assert "exists but is not executable" in text and "chmod +x" in text
    assert "not found" not in text


def test_a_crlf_shebang_is_named(tmp_path: Path) -> None:
    script(tmp_path, "run.sh", b"#!/bin/sh\r\necho hi\r\n")
    text = rendered(tmp_path, "services:\n  a: {cmd: [./run.sh]}\n")
    assert "CRLF" in text and "dos2unix" in text


def test_a_missing_shebang_interpreter_is_named(tmp_path: Path) -> None:
    script(tmp_path, "run.sh", b"#!/nonexistent/python9\nprint(1)\n")
    assert "/nonexistent/python9, which does not exist" in rendered(
        tmp_path, "services:\n  a: {cmd: ./run.sh}\n"
    )


def test_a_script_in_cwd_but_not_on_path_suggests_dot_slash(tmp_path: Path) -> None:
    script(tmp_path, "run.sh", b"#!/bin/sh\n")
    assert "write ./run.sh" in rendered(tmp_path, "services:\n  a: {cmd: run.sh}\n")


def test_a_cwd_that_is_a_file(tmp_path: Path) -> None:
    text = rendered(tmp_path, "services:\n  a: {cmd: sh -c true, cwd: api.py}\n", {"api.py": ""})
    assert "is a file, not a directory" in text and "does not exist" not in text


def test_a_list_cmd_holding_one_command_line(tmp_path: Path) -> None:
    text = rendered(tmp_path, 'services:\n  a: {cmd: ["python -m api"]}\n')
    assert "one whole command line" in text
    assert 'cmd: "python -m api"' in text and '["python", "-m", "api"]' in text


@pytest.mark.timeout(10)
def test_a_2mb_cmd_is_not_tokenised_whole() -> None:
    # shlex is quadratic in a token's length: 2 MB took doctor 15 s. The timeout fails it.
    from devstack.core.doctor import _program

    assert _program("node " + "x" * 2_000_000) == "node"
    assert _program("x" * 2_000_000) is None
    assert _program("python3 " + "'x ' " * 500_000) == "python3"


@pytest.mark.parametrize(
    ("env_text", "expected"),
    [("A=x\\0y\n", "NUL byte"), ("A=x\\ud800\n", "U+D800")],
)
def test_values_a_process_cannot_hold_are_errors(
    tmp_path: Path, env_text: str, expected: str
) -> None:
    # Written through YAML escapes, so the value reaches the resolver as it is.
    config = f'services:\n  a: {{cmd: sh -c true, env: {{A: "{env_text.split("=")[1][:-1]}"}}}}\n'
    problems = check(tmp_path, config)
    assert [p.code for p in problems if p.severity == "error"] == ["unspawnable"]
    assert expected in problems[0].render() and ":2:" in problems[0].render()


def test_nul_from_an_env_file_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "api").mkdir()
    (tmp_path / "api" / ".env").write_bytes(b"A=1\nB=x\x00y\n")
    problems = check(tmp_path, "services:\n  a: {cmd: sh -c true, cwd: api}\n")
    assert any("api/.env:2" in p.render() and "NUL" in p.render() for p in problems)


def test_a_ready_url_with_port_is_interpolated_and_checked(tmp_path: Path) -> None:
    good = "services:\n  a: {cmd: sh -c true, port: 8123, ready: {http: 'http://127.0.0.1:${PORT}/'}}\n"
    assert check(tmp_path, good) == []
    bad = "services:\n  a: {cmd: sh -c true, ready: {http: 'http://127.0.0.1:${PORT}/'}}\n"
    text = rendered(tmp_path, bad)
    assert "uses ${PORT}, which is not set for a" in text and "port:" in text
    junk = "services:\n  a: {cmd: sh -c true, env: {P: x}, ready: {tcp: '127.0.0.1:${P}'}}\n"
    assert "not a valid host:port once interpolated" in rendered(tmp_path, junk)


def test_doctor_speaks_only_of_the_services_being_started(tmp_path: Path) -> None:
    config = (
        "services:\n  api: {cmd: nonexistent-cmd, cwd: api}\n  jobs: {cmd: sh -c true, cwd: jobs}\n"
    )
    files = {"api/.env": "API_TOKEN=a\nBROKEN\n", "jobs/.env": "API_TOKEN=b\n"}
    assert check(tmp_path, config, files)  # about api, and the secret that differs
    project = parse_project((tmp_path / "devstack.yaml").read_text(), tmp_path / "devstack.yaml")
    env = resolve_project(project, {"PATH": "/usr/bin:/bin"}, {})
    jobs_only = dataclasses.replace(project, services={"jobs": project.services["jobs"]})
    assert diagnose(jobs_only, env, check_ports=False) == []


def test_the_diff_hint_names_two_services_that_differ(tmp_path: Path) -> None:
    config = "services:\n" + "".join(f"  {s}: {{cmd: sh -c true, cwd: {s}}}\n" for s in "abc")
    files = {"a/.env": "API_TOKEN=x\n", "b/.env": "API_TOKEN=x\n", "c/.env": "API_TOKEN=y\n"}
    [problem] = check(tmp_path, config, files)
    assert problem.hint and "--diff a c" in problem.hint


def test_dropped_variables_are_one_warning_per_file(tmp_path: Path) -> None:
    names = [f"VAR_{i}" for i in range(30)]
    files = {".env": "".join(f"{n}=1\n" for n in names), "api/.env": "OWN=1\n"}
    problems = check(tmp_path, "services:\n  api: {cmd: sh -c true, cwd: api}\n", files)
    [dropped] = problems
    assert "30 variables defined in .env reach no service" in dropped.message
    assert str(dropped.location) == ".env:1"


def test_every_service_autostart_false_says_so() -> None:
    with pytest.raises(DevstackError) as caught:
        select({"a": [], "b": []}, [], autostart={"a": False, "b": False})
    assert "every service has autostart: false" in caught.value.render()
    assert "devstack up a" in caught.value.render()
    assert "check --except" not in caught.value.render()


def test_the_probe_up_arms_uses_the_interpolated_url(tmp_path: Path) -> None:
    from devstack.runtime import probes

    project = parse_project(
        "services:\n  a: {cmd: x, port: 8123, ready: {http: 'http://127.0.0.1:${PORT}/h'}}\n",
        tmp_path / "devstack.yaml",
    )
    spec = project.services["a"].ready
    assert spec is not None
    probe = probes.arm(spec, service="a", cwd=tmp_path, env={"PORT": "8123"}, lines=None)  # type: ignore[arg-type]
    assert probe.spec.target == "http://127.0.0.1:8123/h"
