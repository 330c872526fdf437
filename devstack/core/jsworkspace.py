"""A JS/TS monorepo's workspace: its package manager and its packages, as npm, yarn, bun
(`workspaces` in package.json) or pnpm (`pnpm-workspace.yaml`) would list them.

Reads files only; `devstack init` turns what it finds into services (issue 12 item 1).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.core.errors import Location, Problem

# Lockfiles name the package manager when package.json's `packageManager` does not.
LOCKFILES = (
    ("pnpm-lock.yaml", "pnpm"),
    ("bun.lock", "bun"),
    ("bun.lockb", "bun"),
    ("yarn.lock", "yarn"),
    ("package-lock.json", "npm"),
)
_DEPENDENCY_KEYS = ("dependencies", "devDependencies", "optionalDependencies", "peerDependencies")


@dataclass(frozen=True)
class Package:
    """One package.json of the workspace."""

    name: str
    directory: str  # relative to the repo root, with `/`; "." for the root package
    scripts: Mapping[str, str]
    dependencies: frozenset[str]  # every package name it depends on, inside or outside


@dataclass(frozen=True)
class Workspace:
    root: Path
    manager: str  # npm | pnpm | yarn | bun
    manager_source: str  # where `manager` was read, for the generated comment
    patterns_source: str  # "package.json workspaces" or "pnpm-workspace.yaml"
    root_package: Package
    packages: tuple[Package, ...]  # sorted by directory
    problems: list[Problem] = field(default_factory=list)

    def by_name(self) -> dict[str, Package]:
        return {package.name: package for package in self.packages}

    def internal_dependencies(self, package: Package) -> list[Package]:
        """The workspace packages `package` depends on (`^task` in turbo.json walks these)."""
        named = self.by_name()
        return [named[name] for name in sorted(package.dependencies) if name in named]


def find_workspace(root: Path) -> Workspace | None:
    """The workspace rooted at `root`, or None when `root` is not a JS monorepo's root."""
    manifest = root / "package.json"
    if not manifest.is_file():
        return None
    problems: list[Problem] = []
    data = _read_json(manifest, "package.json", problems)
    if data is None:
        return None
    patterns, patterns_source = _patterns(root, data, problems)
    if patterns is None:
        return None
    manager, manager_source = _manager(root, data, patterns_source)
    packages = []
    for directory in _expand(root, patterns):
        package_data = _read_json(root / directory / "package.json", directory, problems)
        if package_data is not None:
            packages.append(_package(package_data, directory))
    return Workspace(
        root=root,
        manager=manager,
        manager_source=manager_source,
        patterns_source=patterns_source,
        root_package=_package(data, "."),
        packages=tuple(packages),
        problems=problems,
    )


def _read_json(path: Path, display: str, problems: list[Problem]) -> dict[str, object] | None:
    shown = display if display.endswith("package.json") else f"{display}/package.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as error:
        problems.append(Problem(f"cannot read {shown}: {error}", Location(shown)))
        return None
    except json.JSONDecodeError as error:
        problems.append(
            Problem(f"{shown} is not valid JSON: {error.msg}", Location(shown, error.lineno))
        )
        return None
    return data if isinstance(data, dict) else None


def _patterns(
    root: Path, data: Mapping[str, object], problems: list[Problem]
) -> tuple[list[str] | None, str]:
    pnpm_file = root / "pnpm-workspace.yaml"
    if pnpm_file.is_file():
        import yaml

        try:
            document = yaml.safe_load(pnpm_file.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as error:
            problems.append(Problem(f"cannot read pnpm-workspace.yaml: {error}"))
            return None, ""
        listed = document.get("packages") if isinstance(document, dict) else None
        return _strings(listed), "pnpm-workspace.yaml"
    workspaces = data.get("workspaces")
    if isinstance(workspaces, dict):  # yarn 1's {packages: [...], nohoist: [...]}
        workspaces = workspaces.get("packages")
    if isinstance(workspaces, list):
        return _strings(workspaces), "package.json workspaces"
    return None, ""


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def _manager(root: Path, data: Mapping[str, object], patterns_source: str) -> tuple[str, str]:
    declared = data.get("packageManager")
    if isinstance(declared, str) and "@" in declared:
        return declared.split("@", 1)[0], f"packageManager: {declared}"
    for lockfile, manager in LOCKFILES:
        if (root / lockfile).exists():
            return manager, lockfile
    if patterns_source == "pnpm-workspace.yaml":
        return "pnpm", patterns_source
    return "npm", "no packageManager field or lockfile: npm assumed"


def _expand(root: Path, patterns: list[str]) -> list[str]:
    """Directories with a package.json matched by the workspace globs (`!` excludes)."""
    included: set[str] = set()
    excluded: set[str] = set()
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").removeprefix("./").rstrip("/")
        if not pattern:
            continue
        for manifest in root.glob(f"{pattern}/package.json"):
            directory = manifest.parent.relative_to(root).as_posix()
            if "node_modules" not in directory.split("/"):
                (excluded if negate else included).add(directory)
    return sorted(included - excluded)


def _package(data: Mapping[str, object], directory: str) -> Package:
    scripts = data.get("scripts")
    dependencies: set[str] = set()
    for key in _DEPENDENCY_KEYS:
        listed = data.get(key)
        if isinstance(listed, dict):
            dependencies.update(name for name in listed if isinstance(name, str))
    name = data.get("name")
    return Package(
        name=name if isinstance(name, str) and name else directory.rsplit("/", 1)[-1],
        directory=directory,
        scripts={k: v for k, v in scripts.items() if isinstance(v, str)}
        if isinstance(scripts, dict)
        else {},
        dependencies=frozenset(dependencies),
    )
