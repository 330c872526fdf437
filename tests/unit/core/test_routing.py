"""routing: which services a batch of changed paths concerns."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from devstack.core.config import parse_project
from devstack.core.routing import IgnoreFilter, Router, compile_rules, load_gitignores

CONFIG = """
services:
  jobs:
    cmd: python -m worker
    cwd: services/jobs
    watch: [tasks/**/*.py, worker/, "*.toml", "!tasks/generated.py", ../../libs/common/]
  api:
    cmd: python -m api
    cwd: services/api
    watch: {paths: [./], ignore: ["*.tmp", "fixtures/"], debounce_ms: 20}
  web:
    cmd: npm run dev
    cwd: web
"""


def router(root: Path, config: str = CONFIG, gitignore: dict[str, str] | None = None) -> Router:
    for name, text in (gitignore or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    project = parse_project(textwrap.dedent(config), root / "devstack.yaml")
    env_files = [root / ".env", root / "services" / "api" / ".env"]
    rules = compile_rules(project)
    ignores = IgnoreFilter(root, gitignores=rules.gitignores, keep=env_files)
    return Router(project, env_files, ignores, rules.watches)


def routed(r: Router, *paths: str) -> dict[str, list[str]]:
    root = r.project.root
    routing = r.route([root / path for path in paths])
    return {
        name: [str(path.relative_to(root)) for path in found]
        for name, found in routing.services.items()
    }


@pytest.mark.parametrize(
    ("path", "services"),
    [
        ("services/jobs/tasks/import.py", ["jobs"]),
        ("services/jobs/tasks/deep/er/export.py", ["jobs"]),
        ("services/jobs/tasks/notes.txt", []),
        ("services/jobs/tasks/generated.py", []),  # taken back out by `!`
        ("services/jobs/worker/main.py", ["jobs"]),  # `worker/`: everything below
        ("services/jobs/worker/templates/mail.html", ["jobs"]),
        ("services/jobs/pyproject.toml", ["jobs"]),
        ("services/jobs/sub/pyproject.toml", []),  # `*.toml` is anchored at the cwd
        ("services/api/tasks/import.py", ["api"]),  # another service's cwd
        ("libs/common/db.py", ["jobs"]),  # `../../libs/common/`
        ("libs/other/db.py", []),
        ("services/api/app.py", ["api"]),  # `./`: the whole cwd
        ("services/api/cache.tmp", []),  # watch.ignore, gitignore-style
        ("services/api/a/b/cache.tmp", []),
        ("services/api/fixtures/data.json", []),
        ("web/src/index.ts", []),  # no watch at all
        ("README.md", []),
    ],
)
def test_globs_are_relative_to_the_service_cwd(
    tmp_path: Path, path: str, services: list[str]
) -> None:
    assert sorted(routed(router(tmp_path), path)) == services


def test_a_bare_directory_name_means_everything_below_it(tmp_path: Path) -> None:
    config = "services:\n  jobs:\n    cmd: x\n    cwd: jobs\n    watch: [worker]\n"
    r = router(tmp_path, config)
    assert routed(r, "jobs/worker/a/b.py", "jobs/workers.py") == {"jobs": ["jobs/worker/a/b.py"]}


@pytest.mark.parametrize(
    "path",
    [
        "services/api/node_modules/pkg/index.js",
        "services/api/.git/HEAD",
        "services/api/__pycache__/app.cpython-312.pyc",
        "services/api/app.pyc",
        "services/api/.venv/lib/site.py",
        "services/api/dist/bundle.js",
        "services/api/build/out.py",
        "services/api/.app.py.swp",
        "services/api/.app.py.swx",
        "services/api/app.py~",
        "services/api/.#app.py",
        "services/api/#app.py#",
        "services/api/4913",
        ".devstack/logs/api.log",
    ],
)
def test_default_ignores_never_route(tmp_path: Path, path: str) -> None:
    r = router(tmp_path)
    assert routed(r, path) == {}
    assert not r.watch_filter(None, str(tmp_path / path))


def test_gitignore_rules_root_and_nested(tmp_path: Path) -> None:
    r = router(
        tmp_path,
        gitignore={
            ".gitignore": "*.log\ncoverage/\n.env\n",
            "services/api/.gitignore": "generated/\n!important.log\n",
        },
    )
    assert routed(r, "services/api/debug.log", "services/api/coverage/index.html") == {}
    assert routed(r, "services/api/generated/schema.py") == {}
    assert routed(r, "services/api/important.log") == {"api": ["services/api/important.log"]}
    assert routed(r, "services/api/app.py") == {"api": ["services/api/app.py"]}
    # .env is gitignored, but env files are inputs: never dropped.
    assert r.watch_filter(None, str(tmp_path / ".env"))
    assert r.route([tmp_path / ".env"]).env_changed


def test_load_gitignores_skips_ignored_directories(tmp_path: Path) -> None:
    (tmp_path / "node_modules" / "pkg").mkdir(parents=True)
    (tmp_path / "node_modules" / "pkg" / ".gitignore").write_text("*.js\n")
    (tmp_path / "vendor").mkdir()
    (tmp_path / "vendor" / ".gitignore").write_text("*.py\n")
    (tmp_path / ".gitignore").write_text("vendor/\n")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / ".gitignore").write_text("*.gen\n")
    assert sorted(load_gitignores(tmp_path)) == [tmp_path, tmp_path / "app"]


def test_env_files_and_config_are_flags_not_watch_matches(tmp_path: Path) -> None:
    r = router(tmp_path)
    routing = r.route([tmp_path / "services/api/.env", tmp_path / "devstack.yaml"])
    # services/api/.env is inside api's watched cwd, yet only the env reload handles it.
    assert routing.services == {}
    assert routing.env_files == (tmp_path / "services/api/.env",)
    assert routing.env_changed and routing.config_changed
    nothing = r.route([tmp_path / "services/jobs/notes.md"])
    assert not nothing and not nothing.env_changed and not nothing.config_changed


def test_a_gitignore_edit_is_reported(tmp_path: Path) -> None:
    routing = router(tmp_path).route([tmp_path / "services/api/.gitignore"])
    assert routing.ignore_files == (tmp_path / "services/api/.gitignore",)


def test_a_500_path_batch_routes_once_per_service(tmp_path: Path) -> None:
    r = router(tmp_path)
    paths = [f"services/jobs/tasks/t{i}.py" for i in range(250)]
    paths += [f"services/api/m{i}.py" for i in range(250)]
    routing = r.route([tmp_path / p for p in paths] * 2)  # duplicates count once
    assert sorted(routing.services) == ["api", "jobs"]
    assert len(routing.services["jobs"]) == 250 and len(routing.services["api"]) == 250
    assert r.describe("jobs", routing.services["jobs"]) == "tasks/t0.py changed (+249 more)"


def test_describe_names_one_path_relative_to_the_cwd_or_the_repo(tmp_path: Path) -> None:
    r = router(tmp_path)
    assert r.describe("jobs", [tmp_path / "services/jobs/tasks/a.py"]) == "tasks/a.py changed"
    outside = r.describe("jobs", [tmp_path / "libs/common/db.py"])
    assert outside == "libs/common/db.py changed"


def test_debounce_is_the_shortest_asked_for(tmp_path: Path) -> None:
    assert router(tmp_path).debounce_ms == 20
    assert router(tmp_path, "services:\n  a: {cmd: x}\n").debounce_ms == 50


def test_the_filter_is_a_watch_filter_with_a_useful_repr(tmp_path: Path) -> None:
    r = router(tmp_path, gitignore={".gitignore": "*.log\n"})
    keep = r.watch_filter
    assert keep(1, str(tmp_path / "services/api/app.py"))
    assert not keep(1, str(tmp_path / "services/api/node_modules/x.js"))
    assert "node_modules" in repr(keep) and ".gitignore" in repr(keep)


def test_a_watch_pattern_pathspec_cannot_read_is_named_and_matches_nothing(
    tmp_path: Path,
) -> None:
    config = 'services:\n  jobs: {cmd: python w.py, watch: ["tasks/", "notes\\\\"]}\n'
    r = router(tmp_path, config)
    [jobs] = r.watches
    assert jobs.unreadable == ("notes\\",)
    assert routed(r, "tasks/a.py", "notes\\", "notes/x") == {"jobs": ["tasks/a.py"]}
