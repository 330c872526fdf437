"""devstack.yaml -> Project: the contract keys, and one clear problem per bad input."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from devstack.core.config import find_config, parse_project
from devstack.core.errors import DevstackError

CONFIG = Path("/repo/devstack.yaml")


def parse(text: str):
    return parse_project(text, CONFIG)


def problems(text: str) -> list[str]:
    with pytest.raises(DevstackError) as caught:
        parse(text)
    return [problem.render() for problem in caught.value.problems]


def test_the_contract_example_parses() -> None:
    project = parse(
        """
env_mode: strict
env: [TRIGGER_SECRET_KEY, "NEXT_PUBLIC_*"]
env_files: [.env, .env.local]
vars:
  TRIGGER_SECRET_KEY: {required: true, secret: true, same_across: all, pattern: "^tr_dev_"}
services:
  api:
    cmd: python -m api
    cwd: services/api
    env: [DATABASE_URL, "PORT=8000", "API_URL=http://localhost:${PORT}", "!NEXT_PUBLIC_X"]
    env_files: [.env, .env.local]
    depends_on: [jobs]
  jobs:
    cmd: [python, -m, worker]
    cwd: services/jobs
    restart: no
    stop_signal: INT
    ready: {log: "Local worker ready", timeout: 10}
    watch: {paths: ["tasks/**/*.py"], ignore: ["**/*.tmp"], debounce_ms: 20}
"""
    )
    api, jobs = project.services["api"], project.services["jobs"]
    assert [(rule.kind, rule.name, rule.value) for rule in api.env] == [
        ("pass", "DATABASE_URL", None),
        ("set", "PORT", "8000"),
        ("set", "API_URL", "http://localhost:${PORT}"),
        ("negate", "NEXT_PUBLIC_X", None),
    ]
    assert api.env[1].location.line == 11
    assert [rule.kind for rule in project.env] == ["pass", "glob"]
    assert api.cwd == Path("/repo/services/api")
    assert api.argv == ("python", "-m", "api")  # no shell syntax: exec'd directly
    assert [ref.display for ref in api.env_files] == [
        "services/api/.env",
        "services/api/.env.local",
    ]
    assert all(ref.explicit for ref in api.env_files)
    assert api.depends_on[0].name == "jobs" and api.depends_on[0].condition == "ready"
    assert jobs.argv == ("python", "-m", "worker")
    assert jobs.restart == "no" and jobs.stop_signal == signal.SIGINT
    assert jobs.ready is not None and jobs.ready.kind == "log" and jobs.ready.timeout == 10
    assert jobs.watch is not None and jobs.watch.debounce_ms == 20
    assert not jobs.env_files[0].explicit  # the default list: a missing file is fine
    decl = project.vars["TRIGGER_SECRET_KEY"]
    assert decl.required and decl.secret and decl.same_across == () and decl.pattern == "^tr_dev_"


def test_env_mapping_form_sets_and_passes_through() -> None:
    project = parse(
        "services:\n  a:\n    cmd: x\n    env: {PORT: 8000, DEBUG: true, TOKEN: null}\n"
    )
    rules = project.services["a"].env
    assert [(r.kind, r.name, r.value) for r in rules] == [
        ("set", "PORT", "8000"),
        ("set", "DEBUG", "true"),
        ("pass", "TOKEN", None),
    ]


def test_invalid_yaml_names_line_and_column() -> None:
    [message] = problems("services:\n  api:\n    cmd: [unclosed\n")
    assert message.startswith("devstack.yaml:4:1: error: invalid YAML")


def test_unknown_keys_suggest_the_closest_and_all_problems_come_together() -> None:
    found = problems("servces: {}\nservices:\n  api:\n    comand: x\n    cmd: y\n    port: nope\n")
    assert found[0].startswith("devstack.yaml:1:1: error: unknown key 'servces'")
    assert "did you mean 'services'?" in found[0]
    assert "unknown key 'comand' in services.api" in found[1] and "'cmd'" in found[1]
    assert "devstack.yaml:6:11: error: services.api.port must be a whole number" in found[2]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("services:\n  a: {cmd: 3}\n", "services.a.cmd must be a string, not a number"),
        ("services:\n  a: {}\n", "service 'a' has no cmd"),
        ("services:\n  a: {cmd: x, restart: sometimes}\n", "must be one of no, on-failure, always"),
        ("services:\n  a: {cmd: x, stop_signal: TREM}\n", "did you mean 'SIGTERM'?"),
        ("services:\n  a: {cmd: x, ready: {}}\n", "needs exactly one of http, tcp, log, cmd"),
        ("services:\n  a: {cmd: x, ready: {tcp: nope}}\n", "must be host:port"),
        ("services:\n  a: {cmd: x, ready: {log: '('}}\n", "not a valid regular expression"),
        ("services:\n  a: {cmd: x, env: ['1BAD=x']}\n", "'1BAD' is not a valid variable name"),
        ("services:\n  a: {cmd: x, depends_on: [api]}\n", "depends on unknown service 'api'"),
        ("services:\n  a: {cmd: x, depends_on: [a]}\n", "service 'a' depends on itself"),
        ("services:\n  a: {cmd: x}\n  a: {cmd: y}\n", "'a' appears twice in services"),
        ("env_mode: lax\nservices: {a: {cmd: x}}\n", "env_mode must be 'strict' or 'loose'"),
        ("vars: {K: {same_across: [b]}}\nservices: {a: {cmd: x}}\n", "unknown service 'b'"),
        ("env: {}\n", "has no 'services:' section"),
        ("", "is empty"),
    ],
)
def test_each_bad_input_gets_one_clear_message(text: str, expected: str) -> None:
    found = problems(text)
    assert any(expected in message for message in found), found


def test_a_cycle_is_printed_in_full() -> None:
    text = (
        "services:\n  a: {cmd: x, depends_on: [b]}\n"
        "  b: {cmd: x, depends_on: [c]}\n  c: {cmd: x, depends_on: [a]}\n"
    )
    [message] = problems(text)
    assert "dependency cycle: a -> b -> c -> a" in message


def test_find_config_walks_up_like_git(tmp_path: Path) -> None:
    (tmp_path / "devstack.yaml").write_text("services: {a: {cmd: x}}\n")
    nested = tmp_path / "services" / "api"
    nested.mkdir(parents=True)
    assert find_config(nested) == tmp_path / "devstack.yaml"
    with pytest.raises(DevstackError, match=r"no devstack\.yaml"):
        find_config(Path("/"))
