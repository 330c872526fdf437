"""Changed paths -> the services they concern: watch globs, ignores, gitignore.

Pure, apart from reading `.gitignore` files. Two pieces:

- `IgnoreFilter` drops what no one should ever react to (`.git`, `node_modules`,
  editor swap files, gitignored paths) and is cheap enough to be watchfiles'
  `watch_filter`, so ignored paths are dropped before they reach the event loop.
  The env files and devstack.yaml are always kept: `.env` is nearly always gitignored.
- `Router.route(paths)` says which services' `watch` globs match, and whether an env
  file, devstack.yaml or a `.gitignore` changed.

Watch globs are relative to the service's cwd and anchored there: `*.py` is the cwd's
own Python files, `tasks/**/*.py` anything under tasks/, `worker/` (or a bare
directory name) everything below it, `!tasks/skip.py` takes a path back out, and
`../../libs/common/` reaches a shared library elsewhere in the repo. `ignore` globs
follow .gitignore rules (`*.tmp` matches at any depth).

Both kinds of globs are .gitignore syntax, compiled by pathspec (core/globs.py). The
long-lived `up` only matches: a child compiles them (`compile_rules`, called through
runtime/checker.py), so pathspec stays out of `up` (issue 16).
"""

from __future__ import annotations

import fnmatch
import os
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.core.globs import Globs, compile_globs
from devstack.core.model import DEFAULT_DEBOUNCE_MS, Project, Service

# Directories nobody edits by hand: tools and package managers write there constantly.
DEFAULT_IGNORED_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", ".devstack",
        "dist", "build", ".mypy_cache", ".pytest_cache", ".ruff_cache", ".hypothesis", ".tox",
    }
)  # fmt: skip
# File names that are never a real edit: bytecode, and what editors write while saving
# (vim's swap files and its `4913` write test, emacs' `.#lock` and `#autosave#`,
# backups ending in `~`, JetBrains' safe-write temporaries).
DEFAULT_IGNORED_NAMES = (
    "*.pyc", "*.pyo", "*.swp", "*.swx", "*.swo", "*~", ".#*", "#*#", "4913",
    "*___jb_tmp___", "*___jb_old___", ".DS_Store",
)  # fmt: skip
GITIGNORE = ".gitignore"


@dataclass(frozen=True)
class WatchRules:
    """Everything compiled that routing needs: each watching service's globs, and the
    repo's .gitignore files by the directory each rules (a child makes it)."""

    watches: tuple[ServiceWatch, ...] = ()
    gitignores: Mapping[Path, Globs] = field(default_factory=dict)


def compile_rules(project: Project, *, gitignores: bool = True) -> WatchRules:
    """The project's watch globs and (unless not asked for) .gitignore files, compiled."""
    watches = tuple(
        watch for s in project.services.values() if (watch := ServiceWatch.of(s)) is not None
    )
    return WatchRules(watches, load_gitignores(project.root) if gitignores else {})


def load_gitignores(root: Path) -> dict[Path, Globs]:
    """Every `.gitignore` of the repo (and `.git/info/exclude`), by the directory it rules.

    Walks the repo once, skipping default-ignored and gitignored directories.
    """
    specs: dict[Path, Globs] = {}
    exclude = _read_spec(root / ".git" / "info" / "exclude")
    for directory, subdirs, files in os.walk(root):
        here = Path(directory)
        if GITIGNORE in files and (spec := _read_spec(here / GITIGNORE)) is not None:
            if here == root and exclude is not None:
                spec = exclude + spec
            specs[here] = spec
        elif here == root and exclude is not None:
            specs[here] = exclude
        ruling = IgnoreFilter(root, gitignores=specs)
        subdirs[:] = [d for d in subdirs if not ruling.ignores(os.path.join(directory, d), True)]
    return specs


def _read_spec(path: Path) -> Globs | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return None
    return compile_globs(lines)


class IgnoreFilter:
    """Which paths under `root` no change should be reported for.

    Usable as watchfiles' `watch_filter`: called with (change, path), True keeps it.
    """

    def __init__(
        self,
        root: Path,
        *,
        gitignores: Mapping[Path, Globs] | None = None,
        keep: Iterable[Path] = (),
        dirs: Iterable[str] = DEFAULT_IGNORED_DIRS,
        names: Iterable[str] = DEFAULT_IGNORED_NAMES,
    ) -> None:
        self.root = root
        self.dirs = frozenset(dirs)
        self.names = tuple(names)
        self.gitignores = {str(path): spec for path, spec in (gitignores or {}).items()}
        self.keep = frozenset(str(path) for path in keep)
        self._root_prefix = str(root).rstrip(os.sep) + os.sep
        self._name_regex = re.compile("|".join(fnmatch.translate(n) for n in self.names) or "$^")

    def __call__(self, change: Any, path: str) -> bool:
        return path in self.keep or not self.ignores(path)

    def ignores(self, path: str, is_dir: bool = False) -> bool:
        """Whether `path` (absolute) is ignored; `is_dir` lets `build/`-style rules match."""
        if not path.startswith(self._root_prefix):
            return False
        relative = path[len(self._root_prefix) :]
        parts = relative.split(os.sep)
        if any(part in self.dirs for part in parts):
            return True
        if self._name_regex.match(parts[-1]):
            return True
        return self._gitignored(parts, is_dir)

    def _gitignored(self, parts: list[str], is_dir: bool) -> bool:
        # Deeper .gitignore files override shallower ones, as in git.
        ignored = False
        directory = self._root_prefix.rstrip(os.sep)
        for depth in range(len(parts)):
            spec = self.gitignores.get(directory)
            if spec is not None:
                below = "/".join(parts[depth:]) + ("/" if is_dir else "")
                verdict = spec.check(below)
                if verdict is not None:
                    ignored = verdict
            directory = directory + os.sep + parts[depth]
        return ignored

    def __repr__(self) -> str:
        gitignores = sorted(
            os.path.relpath(path, self.root) + "/" + GITIGNORE for path in self.gitignores
        )
        return (
            f"IgnoreFilter(root={str(self.root)!r}, dirs={sorted(self.dirs)!r}, "
            f"names={list(self.names)!r}, gitignores={gitignores!r}, keep={len(self.keep)} paths)"
        )


@dataclass(frozen=True)
class Routing:
    """What one batch of changed paths concerns."""

    services: Mapping[str, tuple[Path, ...]] = field(default_factory=dict)
    env_files: tuple[Path, ...] = ()  # env files that changed
    config_changed: bool = False  # devstack.yaml changed
    ignore_files: tuple[Path, ...] = ()  # .gitignore files that changed

    @property
    def env_changed(self) -> bool:
        return bool(self.env_files)

    def __bool__(self) -> bool:
        return bool(self.services or self.env_files or self.config_changed or self.ignore_files)


@dataclass(frozen=True)
class ServiceWatch:
    """One service's `watch`, compiled: globs rebased onto `base`, a directory at or
    above its cwd, so that `../` globs and `!` negations live in one spec."""

    name: str
    cwd: Path
    base: Path
    include: Globs
    exclude: Globs | None
    debounce_ms: int
    unreadable: tuple[str, ...] = ()  # its `watch` patterns pathspec cannot read: no match

    @classmethod
    def of(cls, service: Service) -> ServiceWatch | None:
        if service.watch is None or not service.watch.paths:
            return None
        cwd = Path(os.path.normpath(service.cwd))
        patterns = [_split_pattern(pattern) for pattern in service.watch.paths]
        ups = min(max(up for _, up, _ in patterns), len(cwd.parents))
        base = cwd.parents[ups - 1] if ups else cwd
        below_base = cwd.parts[len(cwd.parts) - ups :]
        lines = []
        for negated, up, rest in patterns:
            prefix = "/".join(below_base[: ups - up]) if ups else ""
            anchored = "/" + (f"{prefix}/{rest}" if prefix else rest)
            lines.append(("!" if negated else "") + anchored)
        unreadable: list[str] = []
        include = compile_globs(lines, unreadable)
        written = dict(zip(lines, service.watch.paths, strict=True))
        unreadable = [written[line] for line in unreadable]  # named as the user wrote them
        exclude = compile_globs(service.watch.ignore, unreadable) if service.watch.ignore else None
        return cls(
            service.name, cwd, base, include, exclude, service.watch.debounce_ms, tuple(unreadable)
        )

    def matches(self, path: str) -> bool:
        prefix = str(self.base).rstrip(os.sep) + os.sep
        if not path.startswith(prefix):
            return False
        if not self.include.matches(path[len(prefix) :]):
            return False
        if self.exclude is None:
            return True
        return not self.exclude.matches(os.path.relpath(path, self.cwd))


def _split_pattern(pattern: str) -> tuple[bool, int, str]:
    """`!../../libs/x/` -> (negated, directories up from cwd, the rest, anchored there)."""
    negated = pattern.startswith("!")
    text = pattern[1:] if negated else pattern
    trailing = text.endswith("/")
    text = posixpath.normpath(text.lstrip("/") or ".")
    ups = 0
    while text == ".." or text.startswith("../"):
        ups += 1
        text = text[3:] if text != ".." else "."
    if text == ".":
        text = "**"  # the directory itself: everything below it
    elif trailing:
        text += "/"
    return negated, ups, text


class Router:
    """Routes batches of changed paths for one project (rebuilt on a config reload)."""

    def __init__(
        self,
        project: Project,
        env_files: Iterable[Path],
        ignores: IgnoreFilter,
        watches: Iterable[ServiceWatch],
    ) -> None:
        self.project = project
        self.watch_filter = ignores
        self.config_path = str(project.config_path)
        self.env_files = frozenset(str(path) for path in env_files)
        self.watches = tuple(watches)

    @property
    def debounce_ms(self) -> int:
        """One watcher for the repo: the shortest debounce any service asks for."""
        return min((w.debounce_ms for w in self.watches), default=DEFAULT_DEBOUNCE_MS)

    @property
    def watch_bases(self) -> tuple[Path, ...]:
        """The directories under which watched files may be (for hashing them up front)."""
        return tuple(sorted({watch.base for watch in self.watches}))

    def kept(self) -> frozenset[str]:
        """Paths the ignore filter must never drop."""
        return self.env_files | {self.config_path}

    def services_for(self, path: str) -> list[str]:
        if path in self.env_files or path == self.config_path:
            return []  # reloaded, not restarted: only services whose env changed restart
        return [watch.name for watch in self.watches if watch.matches(path)]

    def route(self, paths: Iterable[str | Path]) -> Routing:
        """Which services, env files, config and ignore files a batch of paths concerns."""
        by_service: dict[str, list[Path]] = {}
        env_files: list[Path] = []
        ignore_files: list[Path] = []
        config_changed = False
        for path in sorted({str(p) for p in paths}):
            if path in self.env_files:
                env_files.append(Path(path))
            elif path == self.config_path:
                config_changed = True
            elif os.path.basename(path) == GITIGNORE:
                ignore_files.append(Path(path))
            if self.watch_filter(None, path):
                for name in self.services_for(path):
                    by_service.setdefault(name, []).append(Path(path))
        return Routing(
            {name: tuple(found) for name, found in by_service.items()},
            tuple(env_files),
            config_changed,
            tuple(ignore_files),
        )

    def concerns(self, path: str) -> bool:
        """Whether a change of `path` could matter (worth hashing to see if it changed)."""
        return (
            path in self.env_files
            or path == self.config_path
            or os.path.basename(path) == GITIGNORE
            or (self.watch_filter(None, path) and bool(self.services_for(path)))
        )

    def describe(self, service: str, paths: Iterable[Path]) -> str:
        """`tasks/import.py changed (+2 more)`, relative to the service's cwd if inside."""
        ordered = sorted(paths)
        cwd = self.project.services[service].cwd
        first = ordered[0]
        shown = str(first.relative_to(cwd)) if first.is_relative_to(cwd) else None
        shown = shown or self.project.display_path(first)
        more = f" (+{len(ordered) - 1} more)" if len(ordered) > 1 else ""
        return f"{shown} changed{more}"
