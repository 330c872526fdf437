"""Package names as service names, and turbo's --filter forms (issue 12 item 7)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.core.config import parse_project
from devstack.core.errors import DevstackError
from devstack.core.model import Project
from devstack.core.packages import apply_filters, package_name, service_names

CONFIG = """\
services:
  web: {cmd: next dev, cwd: apps/web}
  admin: {cmd: vite, cwd: apps/admin, package: "@v1/backoffice"}
  jobs: {cmd: trigger dev, cwd: packages/jobs, depends_on: [db]}
  ui: {cmd: tsc -w, cwd: packages/ui}
  db: {cmd: postgres}
"""
PACKAGES = {
    "apps/web": {"name": "@v1/web", "dependencies": {"@v1/ui": "*", "@v1/jobs": "*"}},
    "apps/admin": {"name": "@v1/admin"},
    "packages/jobs": {"name": "@v1/jobs"},
    "packages/ui": {"name": "@v1/ui"},
}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    for directory, data in PACKAGES.items():
        (tmp_path / directory).mkdir(parents=True)
        (tmp_path / directory / "package.json").write_text(json.dumps(data))
    path = tmp_path / "devstack.yaml"
    path.write_text(CONFIG)
    return parse_project(CONFIG, path)


def test_package_name_from_the_key_or_package_json(project: Project) -> None:
    names = {name: package_name(service) for name, service in project.services.items()}
    assert names == {
        "web": "@v1/web",
        "admin": "@v1/backoffice",  # `package:` wins over package.json
        "jobs": "@v1/jobs",
        "ui": "@v1/ui",
        "db": None,
    }


def test_service_names_accept_package_names_and_suggest_both(project: Project) -> None:
    assert service_names(project, ["@v1/jobs", "web", "@v1/backoffice"]) == ["jobs", "web", "admin"]
    with pytest.raises(DevstackError) as error:
        service_names(project, ["@v1/jbos", "wbe", "@v1/admin"])
    rendered = [(p.message, p.hint) for p in error.value.problems]
    assert rendered[0][0] == "unknown service '@v1/jbos'"
    assert (rendered[0][1] or "").startswith("did you mean '@v1/jobs'")
    assert rendered[1][0] == "unknown service 'wbe'" and "'web'" in (rendered[1][1] or "")
    assert rendered[2][0] == "unknown service '@v1/admin'"  # package: replaced that name


@pytest.mark.parametrize(
    ("filters", "requested", "excluded"),
    [
        (["@v1/web"], ["web"], []),
        (["web"], ["web"], []),
        (["@v1/*"], ["web", "jobs", "ui", "admin"], []),
        (["@v1/web..."], ["web", "jobs", "ui"], []),  # and the packages it depends on
        (["...@v1/ui"], ["web", "ui"], []),  # and its dependents
        (["...db"], ["web", "jobs", "db"], []),  # depends_on and package deps, transitively
        (["./packages/*"], ["jobs", "ui"], []),
        (["!@v1/jobs"], ["web", "admin", "jobs", "ui", "db"], ["jobs"]),
        (["@v1/web...", "!ui"], ["web", "jobs", "ui"], ["ui"]),
    ],
)
def test_filters(
    project: Project, filters: list[str], requested: list[str], excluded: list[str]
) -> None:
    result = apply_filters(project, filters)
    assert sorted(result.requested) == sorted(requested)
    assert list(result.excluded) == excluded


def test_a_filter_that_matches_nothing_says_so_with_the_closest_name(project: Project) -> None:
    with pytest.raises(DevstackError) as error:
        apply_filters(project, ["@v1/wbe..."])
    problem = error.value.problems[0]
    assert problem.message == "--filter '@v1/wbe...' matches no service or package"
    assert (problem.hint or "").startswith("did you mean '@v1/web'")


def test_a_package_name_two_services_share_is_a_warning(project: Project, tmp_path: Path) -> None:
    from devstack.core.doctor import diagnose
    from devstack.core.envresolve import resolve_project

    text = CONFIG + "  copy: {cmd: next dev, cwd: apps/web}\n"
    path = tmp_path / "devstack.yaml"
    path.write_text(text)
    twice = parse_project(text, path)
    problems = diagnose(twice, resolve_project(twice, {}, {}), check_ports=False)
    shared = [p for p in problems if p.code == "package-shared"]
    assert [p.message for p in shared] == [
        "web and copy all have the package name @v1/web, and none depends on the others;"
        " it means web"
    ]
    assert service_names(twice, ["@v1/web"]) == ["web"]


def test_a_package_with_a_one_shot_task_means_the_service_that_waits_for_it(
    project: Project, tmp_path: Path
) -> None:
    """`devstack init` writes `web-build` (a one-shot `build`) with the package of `web`."""
    text = CONFIG.replace(
        "web: {cmd: next dev, cwd: apps/web}",
        "web: {cmd: next dev, cwd: apps/web, depends_on: {web-build: {condition: completed}}}",
    )
    text += "  web-build: {cmd: next build, cwd: apps/web}\n"
    path = tmp_path / "devstack.yaml"
    path.write_text(text)
    both = parse_project(text, path)
    assert service_names(both, ["@v1/web"]) == ["web"]
    from devstack.core.packages import shared_packages

    assert shared_packages(both) == {}


def test_a_one_shot_others_wait_for_is_not_what_a_package_name_means(tmp_path: Path) -> None:
    """formbricks: `database-build` (waited for by web) and `database` share a package."""
    text = """\
services:
  database: {cmd: prisma studio, cwd: db, package: "@f/database"}
  database-build: {cmd: tsc, cwd: db, package: "@f/database"}
  web: {cmd: next dev, depends_on: {database-build: {condition: completed}}}
"""
    (tmp_path / "db").mkdir()
    path = tmp_path / "devstack.yaml"
    path.write_text(text)
    project = parse_project(text, path)
    from devstack.core.packages import shared_packages

    assert service_names(project, ["@f/database"]) == ["database"]
    assert shared_packages(project) == {}
