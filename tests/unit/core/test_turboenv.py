"""Strict mode is turbo's strict mode: its always-passed names, its framework prefixes,
and PATH as the package manager gives it (issue 12 items 2 and 3)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from devstack.core.config import parse_project
from devstack.core.envresolve import admission, package_bin_dirs, resolve_project
from devstack.core.turboenv import infer_framework, matching_wildcard

CONFIG = """\
services:
  web:
    cmd: next dev
    cwd: apps/web
  api:
    cmd: python -m api
    cwd: apps/api
"""

SHELL = {
    "PATH": "/usr/bin",
    "CI": "1",
    "NODE_OPTIONS": "--max-old-space-size=4096",
    "DOCKER_HOST": "unix:///run/docker.sock",
    "COREPACK_HOME": "/c",
    "PNPM_HOME": "/p",
    "LD_LIBRARY_PATH": "/l",
    "VERCEL_ENV": "preview",
    "GITHUB_SHA": "abc",
    "TERM_PROGRAM": "vscode",
    "ProgramFiles(x86)": "C:\\x86",
    "NEXT_PUBLIC_API": "http://api",
    "VITE_API": "http://vite",
    "HOSTNAME": "box",
    "LOGNAME": "me",
    "LC_ALL": "C",
    "TMPDIR": "/tmp/x",
    "NO_COLOR": "1",
    "TURBO_TEAM": "t",
    "COREPACK_ENABLE_STRICT": "0",
    "NIX_PATH": "n",
    "XDG_CONFIG_HOME": "/c",
    "SSH_AUTH_SOCK": "/s",
    "PROGRAMFILES_X86": "not a match for the literal parentheses",
}


def write_repo(root: Path) -> Path:
    for directory, deps in (("apps/web", {"next": "14"}), ("apps/api", {"dotenv": "16"})):
        (root / directory).mkdir(parents=True)
        (root / directory / "package.json").write_text(json.dumps({"dependencies": deps}))
    config = root / "devstack.yaml"
    config.write_text(CONFIG)
    return config


@pytest.mark.parametrize(
    ("name", "web", "api"),
    [
        # turbo's builtin pass-through list (crates/turborepo-task-hash/src/lib.rs)
        ("CI", True, True),
        ("NODE_OPTIONS", True, True),
        ("DOCKER_HOST", True, True),
        ("COREPACK_HOME", True, True),
        ("PNPM_HOME", True, True),
        ("LD_LIBRARY_PATH", True, True),
        ("VERCEL_ENV", True, True),
        ("GITHUB_SHA", True, True),
        ("TERM_PROGRAM", True, True),
        ("ProgramFiles(x86)", True, True),
        ("PROGRAMFILES_X86", False, False),
        # framework inference: next -> NEXT_PUBLIC_* (also NEXT_* is builtin)
        ("NEXT_PUBLIC_API", True, True),
        ("VITE_API", False, False),
        # names devstack passed before and turbo strips
        ("HOSTNAME", False, False),
        ("LOGNAME", False, False),
        ("LC_ALL", False, False),
        # added after the cited commit, seen passing in turbo 2.11.11
        ("TMPDIR", True, True),
        ("NO_COLOR", True, True),
        ("TURBO_TEAM", True, True),
        ("COREPACK_ENABLE_STRICT", True, True),
        ("NIX_PATH", True, True),
        ("XDG_CONFIG_HOME", False, False),
        ("SSH_AUTH_SOCK", False, False),
    ],
)
def test_strict_mode_passes_what_turbo_passes(
    tmp_path: Path, name: str, web: bool, api: bool
) -> None:
    config = write_repo(tmp_path)
    env = resolve_project(parse_project(config.read_text(), config), SHELL, {})
    assert (name in env.services["web"].values, name in env.services["api"].values) == (web, api)


def test_framework_prefix_and_why_a_name_passed(tmp_path: Path) -> None:
    (tmp_path / "apps/web").mkdir(parents=True)
    (tmp_path / "apps/web/package.json").write_text('{"devDependencies": {"vite": "5"}}')
    config = tmp_path / "devstack.yaml"
    config.write_text(CONFIG.replace("next dev", "vite") + "env: [DATABASE_URL, 'A_*']\n")
    project = parse_project(config.read_text(), config)
    rules = admission(project, project.services["web"])
    assert rules.admits("VITE_KEY") and not rules.admits("REACT_APP_KEY")
    assert rules.why_admitted("VITE_KEY") == "framework vite: VITE_*"
    assert rules.why_admitted("CI") == "turbo passes CI in strict mode"
    assert rules.why_admitted("DOCKER_HOST") == "turbo passes DOCKER_HOST (DOCKER_*) in strict mode"
    listed = "listed as DATABASE_URL in `env` at devstack.yaml:8"
    assert rules.why_admitted("DATABASE_URL") == listed
    assert rules.why_admitted("A_B") == "listed as A_* in `env` at devstack.yaml:8"
    assert rules.why_admitted("HOSTNAME").startswith("strict mode: not listed")


@pytest.mark.parametrize(
    ("deps", "slug"),
    [
        ((), None),
        (("next", "react"), "nextjs"),
        (("blitz", "next"), "blitzjs"),  # turbo's order: the first match wins
        (("vite",), "vite"),
        (("@sveltejs/kit", "vite"), "sveltekit"),
        (("solid-js",), None),  # strategy all: solid-start is missing
        (("solid-js", "solid-start", "vite"), "solidstart"),
        (("nuxt3",), "nuxtjs"),  # strategy some
        (("react-dev-utils",), "create-react-app"),
        (("expo", "react-native"), "expo"),
    ],
)
def test_framework_inference_follows_turbos_list(deps: tuple[str, ...], slug: str | None) -> None:
    framework = infer_framework(deps)
    assert (framework.slug if framework else None) == slug


@pytest.mark.parametrize(
    ("name", "patterns", "match"),
    [
        ("VSCODE_PID", ("VSCODE_*",), "VSCODE_*"),
        ("VSCODE", ("VSCODE_*",), None),
        ("A*B", ("A\\*B",), "A\\*B"),
        ("AxB", ("A\\*B",), None),
        ("ProgramFiles(x86)", ("ProgramFiles(x86)",), "ProgramFiles(x86)"),
        ("PATH", ("P?TH", "PAT[H]"), None),  # only * is special to turbo
    ],
)
def test_turbo_wildcards(name: str, patterns: tuple[str, ...], match: str | None) -> None:
    assert matching_wildcard(name, patterns) == match


def test_node_modules_bin_of_cwd_and_each_ancestor_lead_path(tmp_path: Path) -> None:
    config = write_repo(tmp_path)
    for directory in ("apps/web", "", "apps"):
        (tmp_path / directory / "node_modules/.bin").mkdir(parents=True)
    (tmp_path.parent / "node_modules/.bin").mkdir(parents=True, exist_ok=True)  # above the root
    project = parse_project(config.read_text(), config)
    env = resolve_project(project, {"PATH": "/usr/bin"}, {})
    expected = [tmp_path / d / "node_modules/.bin" for d in ("apps/web", "apps", "")]
    assert package_bin_dirs(tmp_path, tmp_path / "apps/web") == expected
    path = env.services["web"].variables["PATH"]
    assert path.value == os.pathsep.join([*map(str, expected), "/usr/bin"])
    assert path.source.kind == "package-manager"
    assert path.source.label.startswith("apps/web/node_modules/.bin, apps/node_modules/.bin")
    assert path.source.label.endswith("+ shell") and path.shadowed[0].label == "shell"
    assert env.services["api"].values["PATH"].split(os.pathsep)[0] == str(expected[1])


def test_pwd_is_the_services_cwd_as_the_package_manager_sets_it(tmp_path: Path) -> None:
    config = write_repo(tmp_path)
    project = parse_project(config.read_text(), config)
    env = resolve_project(project, {"PWD": "/somewhere/else"}, {})
    pwd = env.services["web"].variables["PWD"]
    assert pwd.value == str(tmp_path / "apps/web") and pwd.shadowed[0].label == "shell"


def test_is_system_basic_is_turbos_list() -> None:
    from devstack.core.envresolve import is_system_basic

    assert is_system_basic("CI") and is_system_basic("DOCKER_HOST") and is_system_basic("PATH")
    assert not is_system_basic("HOSTNAME") and not is_system_basic("LC_ALL")
