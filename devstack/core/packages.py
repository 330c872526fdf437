"""Package names as service names, and turbo's `--filter` forms (issue 12 item 7).

A service's package name is its `package:` in devstack.yaml, else the "name" of
`<cwd>/package.json`. Wherever a service name is accepted, its package name is too
(`devstack up @v1/jobs`, `logs`, `env`, `restart` ...), and a typo is answered with the
closest service or package names.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from devstack.core.errors import DevstackError, Problem, closest_names
from devstack.core.graph import with_dependencies
from devstack.core.model import Project, Service
from devstack.core.turboenv import package_dependencies, package_json


def package_name(service: Service) -> str | None:
    """`package:` if set, else the name in `<cwd>/package.json`, else None."""
    if service.package:
        return service.package
    name = (package_json(service.cwd) or {}).get("name")
    return name if isinstance(name, str) and name else None


def packages_of(project: Project) -> dict[str, str]:
    """package name -> the service it means; a service name always wins over a package
    name. A package with several services (`dev` and the one-shot `build` it waits for,
    as `devstack init` writes them) means the one the others are dependencies of."""
    return {package: tops[0] for package, tops in _package_tops(project).items()}


def shared_packages(project: Project) -> dict[str, list[str]]:
    """Package names whose services do not depend on one another: the name is ambiguous
    and means the first of them."""
    return {package: tops for package, tops in _package_tops(project).items() if len(tops) > 1}


def _package_tops(project: Project) -> dict[str, list[str]]:
    """package name -> its services that no other service of the package depends on."""
    groups: dict[str, list[str]] = {}
    for service in project.services.values():
        name = package_name(service)
        if name and name not in project.services:
            groups.setdefault(name, []).append(service.name)
    edges = {name: service.dependency_names for name, service in project.services.items()}
    # What something waits for with `condition: completed` is a one-shot task (a build),
    # not what a package name means when a long-running service has it too.
    one_shots = {
        dep.name
        for service in project.services.values()
        for dep in service.depends_on
        if dep.condition == "completed"
    }
    tops = {}
    for package, members in groups.items():
        below = {dep for m in members for dep in with_dependencies(edges, [m]) if dep != m}
        top = [m for m in members if m not in below] or members
        tops[package] = [m for m in top if m not in one_shots] or top
    return tops


def service_names(project: Project, names: Iterable[str]) -> list[str]:
    """The services `names` mean (service or package names); every unknown one reported."""
    packages: dict[str, str] | None = None
    found, problems = [], []
    for name in names:
        if name in project.services:
            found.append(name)
            continue
        packages = packages_of(project) if packages is None else packages
        if name in packages:
            found.append(packages[name])
        else:
            problems.append(unknown_service(project, name, packages))
    if problems:
        raise DevstackError(problems)
    return found


def unknown_service(project: Project, name: str, packages: Mapping[str, str]) -> Problem:
    close = closest_names(name, [*project.services, *packages])
    known = sorted(project.services)
    hint: str | None = None
    if close:
        hint = "did you mean " + ", ".join(f"'{c}'" for c in close) + "?"
    elif known:
        hint = f"known services: {', '.join(known)}"
    return Problem(f"unknown service '{name}'", None, hint, code="unknown-service")


@dataclass(frozen=True)
class Filtered:
    """What `--filter` items select: services to start and services to leave out."""

    requested: tuple[str, ...]
    excluded: tuple[str, ...]


def apply_filters(project: Project, filters: Sequence[str]) -> Filtered:
    """turbo's `--filter` forms that make sense for a dev stack:

    `web`, `@v1/web`, `@v1/*`  the matching services (with their depends_on, as `up NAME`)
    `web...`                   and the workspace packages web depends on (package.json)
    `...web`                   and the services that depend on web
    `./apps/*`                 the services whose cwd matches the path glob
    `!web`                     leave web out (alone: every service but web)
    """
    requested: list[str] = []
    excluded: list[str] = []
    problems: list[Problem] = []
    for item in filters:
        negate = item.startswith("!")
        text = item[1:] if negate else item
        with_deps, with_dependents = text.endswith("..."), text.startswith("...")
        text = text.removesuffix("...").removeprefix("...")
        matched = _matching(project, text)
        if not matched:
            problems.append(_unmatched(project, item, text))
            continue
        if with_deps:
            matched = _with_package_dependencies(project, matched)
        if with_dependents:
            matched = _with_dependents(project, matched)
        (excluded if negate else requested).extend(matched)
    if problems:
        raise DevstackError(problems)
    if excluded and not requested:
        requested = [name for name, s in project.services.items() if s.autostart]
    return Filtered(tuple(dict.fromkeys(requested)), tuple(dict.fromkeys(excluded)))


def _matching(project: Project, pattern: str) -> list[str]:
    if pattern.startswith(("./", "../")) or pattern == ".":
        return [
            name
            for name, service in project.services.items()
            if fnmatch.fnmatchcase(project.display_path(service.cwd), _as_path(pattern))
        ]
    packages = packages_of(project)
    names = [*project.services, *packages]
    hits = [name for name in names if fnmatch.fnmatchcase(name, pattern)]
    return list(dict.fromkeys(packages.get(hit, hit) for hit in hits))


def _as_path(pattern: str) -> str:
    import os

    normal = os.path.normpath(pattern.strip("{}"))
    return "." if normal in ("", ".") else normal


def _unmatched(project: Project, item: str, text: str) -> Problem:
    problem = unknown_service(project, text, packages_of(project))
    return Problem(
        f"--filter {item!r} matches no service or package", None, problem.hint, code=problem.code
    )


def _with_package_dependencies(project: Project, names: list[str]) -> list[str]:
    """`names` and the services whose packages they depend on in package.json, transitively."""
    packages = packages_of(project)
    edges = {
        name: [packages[dep] for dep in package_dependencies(s.cwd) if dep in packages]
        for name, s in project.services.items()
    }
    found = with_dependencies(edges, names)
    return [name for name in project.services if name in found]


def _with_dependents(project: Project, names: list[str]) -> list[str]:
    edges = {name: service.dependency_names for name, service in project.services.items()}
    packages = packages_of(project)
    for name, service in project.services.items():
        deps = [packages[dep] for dep in package_dependencies(service.cwd) if dep in packages]
        edges[name] = (*edges[name], *deps)
    wanted = set(names)
    return [
        name
        for name in project.services
        if name in wanted or wanted & with_dependencies(edges, [name])
    ]
