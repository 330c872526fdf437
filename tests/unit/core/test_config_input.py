"""Issue 11 §1: YAML as users write it either works as in compose or gets one clear
problem with file:line and the fix; nothing crashes, hangs or changes a value."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.core.config import parse_project
from devstack.core.errors import DevstackError

CONFIG = Path("/repo/devstack.yaml")
SERVICE = "services:\n  a: {cmd: x}\n"


def parse(text: str):  # type: ignore[no-untyped-def]
    return parse_project(text, CONFIG)


def rendered(text: str) -> str:
    with pytest.raises(DevstackError) as caught:
        parse(text)
    return caught.value.render()


def _bomb(levels: int) -> str:
    lines = ["l0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]")
    return "\n".join(lines) + f"\nservices:\n  a: {{cmd: x, restart: *l{levels - 1}}}\n"


BAD_INPUT = [
    # (what, devstack.yaml, every text the message must hold)
    ("typo, no line", "servces:\n  a: {cmd: x}\n", ["did you mean 'services'?", ":1:1:"]),
    ("top-level list", "- a\n- b\n", ["must be a mapping, not a list"]),
    ("Procfile pasted", "web: gunicorn app\n", ["looks like a Procfile line", "devstack init"]),
    ("custom tag", "services:\n  a: {cmd: !env x}\n", [":2:12:", "'!env' is not supported"]),
    ("reference tag", "services:\n  a: {cmd: !reference [a, b]}\n", ["'!reference'"]),
    ("unquoted !NAME", "env:\n  - !SECRET\n" + SERVICE, [":2:5:", 'quote it: "!SECRET"']),
    ("!!int", "services:\n  a: {cmd: x, port: !!int abc}\n", [":2:", "!!int", "remove the !!int"]),
    ("!!float", "services:\n  a: {cmd: x, stop_timeout: !!float abc}\n", ["!!float"]),
    ("!!bool", "services:\n  a: {cmd: x, tty: !!bool maybe}\n", ["!!bool"]),
    ("!!timestamp", "services:\n  a: {cmd: x, env: {D: !!timestamp x}}\n", ["!!timestamp"]),
    ("bad date", "services:\n  a: {cmd: x, env: {D: 2020-13-45}}\n", ["quote it"]),
    ("!!seq on text", "services:\n  a: {cmd: !!seq x}\n", ["!!seq"]),
    ("!!seq on mapping", "services:\n  a: !!seq {cmd: x}\n", ["does not fit a mapping"]),
    ("!!binary", "services:\n  a: {cmd: !!binary 'a'}\n", ["!!binary"]),
    ("recursive alias", "x-a: &a [*a]\n" + SERVICE, [":1:", "recursive alias"]),
    ("recursive mapping", "services: &s {a: {cmd: x, env: *s}}\n", ["recursive alias"]),
    ("deep nesting", "services: " + "[" * 5000 + "]" * 5000, ["nested more than", "1:"]),
    ("pasted ESC", 'services:\n  a: {cmd: "x\x1b[0m"}\n', [":2:14:", "U+001B (ESC)", "delete it"]),
    ("alias bomb", _bomb(8), ["expand to more than", "alias bomb"]),
    ("tab", "services:\n\ta: {cmd: x}\n", [":2:1:", "tab", "spaces"]),
    ("numeric name", "services:\n  1: {cmd: x}\n", [":2:3:", "key 1", 'quote it: "1"']),
    ("on: name", "services:\n  on: {cmd: x}\n", ["true/false", 'quote it: "on"']),
    ("DEBUG = 1", 'services:\n  a: {cmd: x, env: ["DEBUG = 1"]}\n', ['write "DEBUG=1"']),
    ("backslash cwd", "services:\n  a: {cmd: x, cwd: 'a\\b'}\n", ["backslashes", "a/b"]),
    ("absolute watch", "services:\n  a: {cmd: x, watch: [/etc/x]}\n", ["is absolute"]),
    ("outside watch", "services:\n  a: {cmd: x, watch: [../y]}\n", ["outside the repo"]),
    ("NUL in cmd", 'services:\n  a: {cmd: "x\\0y"}\n', [":2:", "NUL byte"]),
    ("surrogate in argv", 'services:\n  a: {cmd: ["\\ud800"]}\n', ["U+D800"]),
    ("bad condition", "services:\n  a: {cmd: x, depends_on: {b: healthy}}\n  b: {cmd: y}\n",
     ["condition must be one of"]),
    ("undefined alias", "services: *x\n", ["undefined alias", "&name"]),
]  # fmt: skip


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("what", "text", "expected"), BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_a_clear_message_with_its_line(
    what: str, text: str, expected: list[str]
) -> None:
    message = rendered(text)
    for part in expected:
        assert part in message, f"{what}: {part!r} not in\n{message}"
    assert "Traceback" not in message


def test_anchors_merge_keys_and_x_keys_work_as_in_compose() -> None:
    project = parse(
        """
x-common: &common
  cwd: services/api
  env: {LOG_LEVEL: debug}
  restart: on-failure
services:
  api:
    <<: *common
    cmd: python -m api
  worker:
    <<: [*common]
    cmd: python -m worker
    cwd: services/worker
    x-note: ignored like in compose
"""
    )
    api, worker = project.services["api"], project.services["worker"]
    assert api.cwd == Path("/repo/services/api")
    assert worker.cwd == Path("/repo/services/worker")  # written keys win over merged ones
    assert [(r.name, r.value) for r in worker.env] == [("LOG_LEVEL", "debug")]
    assert api.restart == worker.restart == "on-failure"


def test_env_values_keep_the_text_the_user_wrote() -> None:
    project = parse(
        "services:\n  a:\n    cmd: x\n    env: {A: yes, B: NO, C: on, D: 1.10, E: 01234,"
        " F: 12:30, G: 2020-01-01, H: '007', I: 0x1F, J: ~}\n"
    )
    values = {rule.name: rule.value for rule in project.services["a"].env}
    assert values == {
        "A": "yes", "B": "NO", "C": "on", "D": "1.10", "E": "01234",
        "F": "12:30", "G": "2020-01-01", "H": "007", "I": "0x1F", "J": None,
    }  # fmt: skip


def test_compose_depends_on_shorthand_is_accepted() -> None:
    project = parse(
        "services:\n  a: {cmd: x, depends_on: {b: service_healthy, c: service_started}}\n"
        "  b: {cmd: y}\n"
        "  c: {cmd: z, depends_on: {b: {condition: service_completed_successfully}}}\n"
    )
    assert [(d.name, d.condition) for d in project.services["a"].depends_on] == [
        ("b", "ready"),
        ("c", "started"),
    ]
    assert project.services["c"].depends_on[0].condition == "completed"


def test_tilde_in_paths_is_the_home_directory() -> None:
    project = parse("services:\n  a: {cmd: x, cwd: ~/code/api, env_files: [~/.secrets.env]}\n")
    home = Path.home()
    assert project.services["a"].cwd == home / "code/api"
    assert project.services["a"].env_files[0].path == home / ".secrets.env"


def test_the_schema_accepts_what_the_loader_accepts() -> None:
    """Editors validating against `devstack schema` must not flag compose-style input."""
    import jsonschema
    import yaml

    from devstack.core.schema import devstack_schema

    text = """
x-common: &common {cwd: services/api, restart: on-failure}
services:
  api: {<<: *common, cmd: python -m api, depends_on: {db: service_healthy}, x-note: hi}
  db: {cmd: postgres, depends_on: {cache: {condition: service_started}}}
  cache: {cmd: redis-server}
"""
    parse(text)
    jsonschema.validate(yaml.safe_load(text), devstack_schema())


def test_a_bad_env_override_is_explained_without_its_value() -> None:
    from devstack.commands import env_overrides

    with pytest.raises(DevstackError) as caught:
        env_overrides(["API_TOKEN = sk_live_planted", "1BAD=planted", "planted"])
    text = caught.value.render()
    assert "no spaces around '=': --env API_TOKEN=..." in text
    assert "planted" not in text
