"""`devstack init` on real monorepos' config files: what turbo would run, as services."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.core.config import parse_project
from devstack.core.errors import DevstackError
from devstack.core.jsimport import _scalar, plan_import, render, service_names
from devstack.core.jsworkspace import Package, Workspace, find_workspace
from devstack.core.model import Project
from devstack.core.turbo import TurboConfig, from_document, parse_jsonc, read_turbo, task_for

FIXTURES = Path(__file__).parents[2] / "fixtures"


def imported(name: str, task: str = "dev") -> tuple[str, Project]:
    root = FIXTURES / name
    workspace = find_workspace(root)
    assert workspace is not None and not workspace.problems
    turbo = read_turbo(root, [p.directory for p in workspace.packages])
    text = render(plan_import(workspace, turbo, task))
    try:
        return text, parse_project(text, root / "devstack.yaml")
    except DevstackError as error:  # pragma: no cover - shows the problems on failure
        raise AssertionError(f"{error}\n{text}") from error


def deps(project: Project, service: str) -> dict[str, str]:
    return {d.name: d.condition for d in project.services[service].depends_on}


def test_midday_bun_workspace_with_turbo_2() -> None:
    text, project = imported("midday-v1")
    assert list(project.services) == ["api", "app", "web", "email"]
    assert project.env_mode == "strict"
    app = project.services["app"]
    assert (app.package, app.cmd, app.cwd.name) == ("@v1/app", "next dev -p 3000", "app")
    assert "# listens on 3003 (packages/email/package.json scripts.dev)" in text
    assert "env_mode: strict  # turbo 2's default env mode" in text


def test_midday_jobs_task_is_the_trigger_worker() -> None:
    _, project = imported("midday-v1", task="jobs")
    assert list(project.services) == ["jobs"]
    assert project.services["jobs"].cmd == "bunx trigger.dev@beta dev"


def test_create_t3_turbo_one_shot_dev_tasks_become_completed_dependencies() -> None:
    text, project = imported("create-t3-turbo")
    assert set(project.services) == {"expo", "api", "db", "validators", "nextjs", "tanstack-start"}
    # `^dev` over the workspace graph; @acme/auth and @acme/ui have no dev script, so
    # turbo walks through them to @acme/db
    assert deps(project, "nextjs") == {
        "api": "completed",
        "db": "completed",
        "validators": "completed",
    }
    assert deps(project, "api") == {"db": "completed", "validators": "completed"}
    nextjs = project.services["nextjs"]
    assert nextjs.cmd == "next dev"  # `pnpm with-env` dropped
    assert [f.path.resolve() for f in nextjs.env_files] == [FIXTURES / "create-t3-turbo/.env"]
    assert project.services["expo"].tty  # apps/expo/turbo.json interactive
    assert not project.services["nextjs"].tty
    names = [rule.name for rule in project.env]
    assert names[:2] == ["POSTGRES_URL", "AUTH_DISCORD_ID"] and "VERCEL_URL" in names
    assert "# turbo task @acme/api#dev, one-shot" in text


def test_documenso_npm_workspace_with_turbo_1_pipeline_is_loose() -> None:
    text, project = imported("documenso-turbo1")
    assert list(project.services) == ["docs", "openpage-api", "remix", "email"]
    assert project.env_mode == "loose"
    remix = project.services["remix"]
    assert remix.cmd == "react-router dev"
    assert [f.display for f in remix.env_files] == [".env.local", ".env"]  # the root's
    assert "NEXTAUTH_SECRET" in [rule.name for rule in project.env]
    assert "turbo 1.x's default (infer) mode is loose" in text


def test_formbricks_package_task_overrides_pull_in_build_chains() -> None:
    _, project = imported("formbricks")
    web = deps(project, "web")
    assert web == dict.fromkeys(
        [
            "ai-build",
            "cache-build",
            "database-build",
            "jobs-build",
            "logger-build",
            "storage-build",
        ],
        "completed",
    )
    assert deps(project, "database-build")["database-generate"] == "completed"
    assert project.services["database"].package == "@formbricks/database"
    assert project.services["database-build"].package is None  # one name, one service
    packages = [s.package for s in project.services.values() if s.package]
    assert len(packages) == len(set(packages))
    assert project.services["email"].cmd == "email dev --port 3456"
    assert project.services["database"].cmd == "vite build --watch"


def test_a_repo_without_turbo_runs_every_dev_script_loose(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"workspaces": {"packages": ["apps/*"]}}')
    (tmp_path / "apps/a").mkdir(parents=True)
    (tmp_path / "apps/a/package.json").write_text('{"name": "a", "scripts": {"dev": "vite"}}')
    workspace = find_workspace(tmp_path)
    assert workspace is not None and workspace.manager == "npm"
    plan = plan_import(workspace, None)
    assert [s.name for s in plan.services] == ["a"] and plan.env_mode.value == "loose"


def test_short_names_resolve_collisions() -> None:
    packages = [
        Package(name, name, {}, frozenset())
        for name in ("@v1/jobs", "@acme/api", "@other/api", "web", "@x/web", "weird name!")
    ]
    assert service_names(packages) == {
        "@v1/jobs": "jobs",
        "@acme/api": "acme-api",
        "@other/api": "other-api",
        "web": "web",
        "@x/web": "x-web",
        "weird name!": "weird-name",
    }


@pytest.mark.parametrize(
    "text",
    [
        '{"tasks": {"dev": {"persistent": true}}}',
        '{\n  // comment\n  "tasks": {"dev": {"persistent": true,},},\n}',
        '{/* block */ "tasks": {"dev": {"persistent": true}}}',
    ],
)
def test_turbo_json_is_jsonc(text: str) -> None:
    data = parse_jsonc(text, "turbo.json", problems := [])
    assert data is not None and not problems
    assert from_document(data).tasks["dev"].persistent


def test_a_turbo_json_that_does_not_parse_is_a_problem() -> None:
    assert parse_jsonc('{"tasks": ', "turbo.json", problems := []) is None
    assert problems and "turbo.json does not parse" in problems[0].message


def test_turbo_1_infers_strict_from_pass_through_env() -> None:
    config = from_document({"pipeline": {"dev": {"passThroughEnv": ["A"]}}})
    assert (config.major, config.env_mode) == (1, "strict")
    assert from_document({"tasks": {}, "envMode": "loose"}).env_mode == "loose"


def test_a_package_task_overrides_the_root_task_key_by_key() -> None:
    root = from_document(
        {"tasks": {"dev": {"dependsOn": ["^dev"], "env": ["A"]}, "web#dev": {"env": ["B"]}}}
    )
    web = task_for(root, "web", "apps/web", "dev")
    assert web is not None and web.env == ("B",) and web.depends_on == ()
    other = task_for(root, "api", "apps/api", "dev")
    assert other is not None and other.depends_on == ("^dev",)


def test_what_cannot_be_translated_is_listed_at_the_end(tmp_path: Path) -> None:
    text, _ = imported("documenso-turbo1")
    assert text.endswith(
        "# Not translated (devstack init could not say it in devstack.yaml):\n"
        "#   - package.json scripts.dev (`npm run translate:compile && turbo run dev"
        " --filter=@documenso/remix`) starts only @documenso/remix: `devstack up remix` does"
        " the same; `devstack up` starts them all\n"
    )
    root = _workspace(
        tmp_path,
        {"dev": {"dependsOn": ["$API_URL", "//#setup"]}},
        {"web": {"dev": "dotenv -e .env -o -- next dev", "web-build": "x"}},
        global_dot_env=[".env"],
    )
    plan = plan_import(*root)
    assert plan.untranslated == [
        "turbo.json globalDotEnv ['.env']: turbo 1.x only hashed these files, it never loaded"
        " them; devstack's root env_files are .env, .env.local",
        "web/package.json scripts.dev: dotenv option -o (in `dotenv -e .env -o -- next dev`)",
        "dependsOn $API_URL: list API_URL under env",
        "dependsOn //#setup: no such task or script",
    ]
    assert "#   - dependsOn $API_URL: list API_URL under env\n" in render(plan)


def test_every_line_says_where_it_came_from() -> None:
    text, _ = imported("create-t3-turbo")
    body = text.split("services:\n", 1)[1]
    for line in body.splitlines():
        assert "  # " in line or line.strip().startswith("#") or line.endswith(":"), line


def test_a_task_service_never_takes_a_package_service_name(tmp_path: Path) -> None:
    workspace, turbo = _workspace(
        tmp_path,
        {"dev": {"dependsOn": ["build"], "persistent": True}, "build": {}},
        {"web": {"dev": "next dev", "build": "next build"}, "web-build": {"dev": "vite"}},
    )
    plan = plan_import(workspace, turbo)
    by_task = {(s.package, s.task): s.name for s in plan.services}
    assert by_task == {
        ("web", "dev"): "web",
        ("web", "build"): "web-build-2",  # the package web-build has the name web-build
        ("web-build", "dev"): "web-build",  # it has no build script: nothing to run
    }


def _workspace(
    root: Path,
    tasks: dict[str, object],
    packages: dict[str, dict[str, str]],
    **top: object,
) -> tuple[Workspace, TurboConfig]:
    import json

    (root / "package.json").write_text(json.dumps({"workspaces": list(packages)}))
    (root / "turbo.json").write_text(json.dumps({"tasks": tasks, **_camel(top)}))
    for name, scripts in packages.items():
        (root / name).mkdir()
        (root / name / "package.json").write_text(json.dumps({"name": name, "scripts": scripts}))
    workspace = find_workspace(root)
    assert workspace is not None
    turbo = read_turbo(root, [p.directory for p in workspace.packages])
    assert turbo is not None
    return workspace, turbo


def _camel(values: dict[str, object]) -> dict[str, object]:
    return {"globalDotEnv" if k == "global_dot_env" else k: v for k, v in values.items()}


def test_a_package_json_that_does_not_parse_names_its_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "package.json").write_text('{"workspaces": ["apps/*"]}')
    (tmp_path / "apps/web").mkdir(parents=True)
    (tmp_path / "apps/web/package.json").write_text('{\n  "name": "web",\n  "scripts": {,}\n}')
    workspace = find_workspace(tmp_path)
    assert workspace is not None
    assert [(p.message.split(":")[0], str(p.location)) for p in workspace.problems] == [
        ("apps/web/package.json is not valid JSON", "apps/web/package.json:3")
    ]


def test_a_root_task_dependency_runs_the_root_script(tmp_path: Path) -> None:
    """cal.com's turbo.json: `"dev": {"dependsOn": ["//#env-check:common"]}`."""
    workspace, turbo = _workspace(
        tmp_path, {"dev": {"dependsOn": ["//#env-check:common"]}}, {"web": {"dev": "next dev"}}
    )
    (tmp_path / "package.json").write_text(
        '{"workspaces": ["web"], "scripts": {"env-check:common": "node check.js"}}'
    )
    workspace = find_workspace(tmp_path)
    assert workspace is not None
    plan = plan_import(workspace, turbo)
    assert [(s.name, s.cwd, s.cmd.value) for s in plan.services] == [
        ("web", "web", "next dev"),
        ("root-env-check-common", ".", "node check.js"),
    ]
    assert plan.services[0].depends_on[0][:2] == ("root-env-check-common", "completed")
    project = parse_project(render(plan), tmp_path / "devstack.yaml")
    assert project.services["root-env-check-common"].cwd == tmp_path


def test_env_entries_devstack_cannot_read_are_listed_not_written(tmp_path: Path) -> None:
    """unkey's turbo.json escapes the wildcard: `"NEXT_PUBLIC_\\\\*"`."""
    workspace, turbo = _workspace(
        tmp_path,
        {"dev": {"env": ["NEXT_PUBLIC_*", "!SECRET", "NEXT_PUBLIC_\\*", "A B"]}},
        {"web": {"dev": "next dev\n--turbo"}},
    )
    plan = plan_import(workspace, turbo)
    assert [line.value for line in plan.services[0].env] == ["NEXT_PUBLIC_*", "!SECRET"]
    assert plan.untranslated == [
        "turbo.json tasks.dev.env: 'NEXT_PUBLIC_\\\\*' is not a name or NAME_* pattern",
        "turbo.json tasks.dev.env: 'A B' is not a name or NAME_* pattern",
    ]
    project = parse_project(render(plan), tmp_path / "devstack.yaml")  # still one line each
    assert project.services["web"].cmd == "next dev\n--turbo"


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=40))
def test_any_value_reads_back_unchanged_from_the_generated_yaml(value: str) -> None:
    """A script or a package name can hold anything; the file must say exactly it."""
    assert yaml.safe_load(f"key: {_scalar(value)}  # a comment") == {"key": value}


def test_a_task_key_devstack_does_not_know_is_listed(tmp_path: Path) -> None:
    workspace, turbo = _workspace(
        tmp_path,
        {"dev": {"persistent": True, "cache": False, "with": ["api#dev"], "outputs": []}},
        {"web": {"dev": "next dev"}, "api": {"dev": "tsx watch"}},
    )
    plan = plan_import(workspace, turbo)
    assert plan.untranslated == ["turbo.json tasks.dev.with: not translated"]
