"""Frameworks that load env files themselves: detection, their order, and the lines the
JS dotenv grammar reads differently (issue 12 item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.core.config import parse_project
from devstack.core.envresolve import resolve_project
from devstack.core.frameworks import detect_loader, js_reading_differs

FILES = {
    ".env": "A=env\nB=env\nC=env\nD=env\nE=env\n",
    ".env.local": "A=local\nB=local\nC=local\n",
    ".env.development": "A=development\nB=development\nD=development\n",
    ".env.development.local": "A=development.local\n",
}


@pytest.mark.parametrize(
    ("cmd", "deps", "expected"),
    [
        # Next: .env.development.local > .env.local > .env.development > .env
        ("next dev", {"next": "14"}, {"A": "development.local", "B": "local", "C": "local",
                                      "D": "development", "E": "env"}),
        # Vite: .env.[mode] beats .env.local
        ("vite", {"vite": "5"}, {"A": "development.local", "B": "development", "C": "local",
                                 "D": "development", "E": "env"}),
        ("bun run src/index.ts", {}, {"A": "development.local", "B": "local", "C": "local",
                                      "D": "development", "E": "env"}),
        # trigger.dev CLI: dotenv with several paths, the first file that sets a name wins
        ("npx trigger.dev@latest dev", {}, {"A": "env", "B": "env", "C": "env", "D": "env",
                                            "E": "env"}),
        ("trigger dev", {}, {"A": "env", "B": "env", "C": "env", "D": "env", "E": "env"}),
        # dotenv users read <cwd>/.env only
        ("node server.js", {"dotenv": "16"}, {"A": "env", "B": "env", "C": "env", "D": "env",
                                              "E": "env"}),
        # no framework: devstack's default files, .env.local over .env
        ("python -m api", {}, {"A": "local", "B": "local", "C": "local", "D": "env", "E": "env"}),
    ],
)  # fmt: skip
def test_each_framework_reads_its_files_in_its_order(
    tmp_path: Path, cmd: str, deps: dict[str, str], expected: dict[str, str]
) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "package.json").write_text(json.dumps({"dependencies": deps}))
    for name, text in FILES.items():
        (app / name).write_text(text)
    config = tmp_path / "devstack.yaml"
    config.write_text(f"env: [A]\nservices:\n  app: {{cmd: {cmd!r}, cwd: app}}\n")
    env = resolve_project(parse_project(config.read_text(), config), {"A": "shell"}, {})
    values = env.services["app"].values
    assert values.pop("A") == "shell"  # never over a variable already in the environment
    expected.pop("A")
    assert {k: v for k, v in values.items() if k in "BCDE"} == expected


def test_scripts_are_followed_one_level(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text(
        json.dumps({"scripts": {"dev": "next dev --turbo", "jobs": "trigger dev"}})
    )
    assert (detect_loader(tmp_path, "pnpm dev") or object()).__dict__["slug"] == "next"
    assert (detect_loader(tmp_path, "npm run jobs") or object()).__dict__["slug"] == "trigger"
    assert (detect_loader(tmp_path, "bun run dev") or object()).__dict__["slug"] == "bun"
    assert detect_loader(tmp_path, "yarn nope") is None


def test_explicit_env_files_beat_the_frameworks_like_a_dotenv_wrapper(tmp_path: Path) -> None:
    app = tmp_path / "apps/web"
    app.mkdir(parents=True)
    (app / "package.json").write_text('{"dependencies": {"next": "14"}}')
    (app / ".env").write_text("A=web\nB=web\n")
    (tmp_path / ".env").write_text("A=root\n")
    config = tmp_path / "devstack.yaml"
    config.write_text(
        "env_files: []\nservices:\n  web: {cmd: next dev, cwd: apps/web, env_files: [../../.env]}\n"
    )
    env = resolve_project(parse_project(config.read_text(), config), {}, {})
    web = env.services["web"]
    assert web.values["A"] == "root" and web.values["B"] == "web"
    assert web.variables["B"].source.kind == "framework-file"
    assert web.variables["B"].source.label == "apps/web/.env:2"


@pytest.mark.parametrize(
    ("line", "differs"),
    [
        ("A=123#abc", True),
        ("URL=http://x/#frag", True),
        ("A=a b  # comment", False),
        ('URL="http://x/#frag"', False),
        ("W=$HOME/x", False),  # both expand it (devstack: compose's grammar)
        ('D="$HOME"', False),
        ("S='$HOME'", True),
        ("B=${HOME}", False),
        ("C=${NOPE:-def}", False),
        ("S='${HOME}'", True),
        ("E=\\$HOME", True),
        ('Q="a\\"b"', True),
        ("T=`tick`", True),
        ("DD=a$$b", True),
        ("P='a$$b'", False),
        ("PLAIN=value", False),
        ("# C=1#2", False),
        ('M="l1\nW=$HOME#x\nl2"', False),  # inside a multi-line value: not an assignment
    ],
)
def test_js_dotenv_grammar_differences(line: str, differs: bool) -> None:
    found = list(js_reading_differs(line + "\n"))
    assert bool(found) == differs, found


@pytest.mark.parametrize(
    ("line", "differs"),
    [("B=${HOME}", True), ("W=$HOME", True), ("D=a$$b", True), ("S='$HOME'", False),
     ("A=plain", False), ("H=1#2", True)],
)  # fmt: skip
def test_loaders_without_expansion_differ_wherever_devstack_expands(
    line: str, differs: bool
) -> None:
    """trigger.dev's CLI and plain dotenv do not expand: `${HOME}` stays text there."""
    assert bool(list(js_reading_differs(line + "\n", expands=False))) == differs


@pytest.mark.parametrize(
    ("filename", "target"),
    [(".env.example", ".env"), (".env.sample", ".env"), (".env-example", ".env"),
     (".env-template", ".env"), (".env.template", ".env"), (".env.dist", ".env"),
     (".env.local.example", ".env.local"), (".env.development.example", ".env.development"),
     (".env", None), ("example.env", None), (".example", None), (".envrc", None)],
)  # fmt: skip
def test_example_file_names(filename: str, target: str | None) -> None:
    from devstack.core.examples import target_name

    assert target_name(filename) == target


def test_next_expands_each_file_alone(tmp_path: Path) -> None:
    """@next/env: `${BASE}` in .env.local cannot see a BASE only .env defines."""
    from devstack.core.doctor import diagnose

    app = tmp_path / "web"
    app.mkdir()
    (app / "package.json").write_text('{"dependencies": {"next": "15"}}')
    (app / ".env").write_text("BASE=http://x\nSAME=${BASE}/same\n")
    (app / ".env.local").write_text("API=${BASE}/api\nOWN=1\nUSES_OWN=$OWN\n")
    config = tmp_path / "devstack.yaml"
    config.write_text("services:\n  web: {cmd: next dev, cwd: web}\n")
    project = parse_project(config.read_text(), config)
    problems = diagnose(project, resolve_project(project, {}, {}), check_ports=False)
    flagged = [str(p.location) for p in problems if p.code == "js-dotenv-differs"]
    assert flagged == ["web/.env.local:1"]


@pytest.mark.parametrize(
    ("cmd", "slug"),
    [("next dev", "next"), ("npx next dev", "next"), ("pnpm exec vite --port 3000", "vite"),
     ("node node_modules/.bin/next dev", "next"), ("bunx --bun vite", "bun"),
     ("npx trigger.dev@latest dev", "trigger"), ("echo next", None),
     ("python -m api --mode next", None), ("PORT=3003 next dev -p 3003", "next")],
)  # fmt: skip
def test_the_program_a_command_runs_decides(tmp_path: Path, cmd: str, slug: str | None) -> None:
    loader = detect_loader(tmp_path, cmd)
    assert (loader.slug if loader else None) == slug
