"""The environment each service gets, and where every value came from.

Layers, lowest to highest precedence (the one place this order is stated):
  1. the root env files (`.env`, then `.env.local`)
  2. the service's own env files (`<cwd>/.env`, then `<cwd>/.env.local`)
  3. the shell environment devstack was started from
  4. values set in devstack.yaml: `port:` (as PORT), then global `env`, then the service's
  5. `--env NAME=value` on the command line

In strict mode the root files and the shell contribute only names that an `env` rule
lists (or a system basic such as PATH); the service's own files and set values always
contribute. `!NAME` keeps a name out of every layer but `--env`. Loose mode lets every
name through. Interpolations in values (compose-spec's: `$NAME`, `${NAME:-default}`,
`${NAME:?message}` ..., see interpolate.py) see what lower layers (and earlier lines of
the same layer) define, then the shell; each value keeps the sources of the names it
used. An undefined `${NAME}` with no default is an error, not compose's empty string.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from devstack.envfile import EnvFile, read_env_file
from devstack.errors import Location, Problem, closest_names
from devstack.interpolate import (
    UNCLOSED,
    InvalidTemplate,
    Missing,
    Reference,
    expand,
    interpolate,
)
from devstack.model import EnvRule, Project, Service
from devstack.secrets import is_secret, masked

SourceKind = Literal["root-file", "service-file", "shell", "config", "port", "cli"]

# What every process needs to run at all; strict mode lets these through from the shell
# and root files without an `env` rule.
SYSTEM_BASICS = frozenset(
    {
        "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "COLORTERM", "LANG",
        "LANGUAGE", "TZ", "TMPDIR", "TEMP", "TMP", "XDG_RUNTIME_DIR", "SSH_AUTH_SOCK",
        "DISPLAY", "WAYLAND_DISPLAY", "HOSTNAME", "NO_COLOR", "FORCE_COLOR",
    }
)  # fmt: skip
SYSTEM_BASIC_PREFIXES = ("LC_",)


@dataclass(frozen=True)
class Source:
    """One layer's value for a name: `.env:3`, `services/jobs/.env:7`, `shell`, ..."""

    kind: SourceKind
    label: str
    value: str
    location: Location | None = None
    written: str | None = None  # the value as written, when it used other variables
    uses: tuple[Use, ...] = ()  # those variables, in order


@dataclass(frozen=True)
class Use:
    """A variable a value refers to, and the source it had there (None: not defined)."""

    name: str
    source: Source | None


@dataclass(frozen=True)
class Variable:
    """A variable a service receives: the winning source and those it shadowed."""

    name: str
    value: str
    source: Source
    shadowed: tuple[Source, ...] = ()  # highest precedence first


@dataclass(frozen=True)
class Dropped:
    """A name some env file defines that the service does not receive, and why."""

    name: str
    sources: tuple[Source, ...]
    reason: str


@dataclass
class ServiceEnv:
    name: str
    values: dict[str, str] = field(default_factory=dict)
    variables: dict[str, Variable] = field(default_factory=dict)
    dropped: dict[str, Dropped] = field(default_factory=dict)


@dataclass
class ProjectEnv:
    services: dict[str, ServiceEnv]
    problems: list[Problem]
    env_files: tuple[Path, ...]  # every env file that feeds some service, present or not
    files: dict[Path, EnvFile]
    shell: Mapping[str, str]


@dataclass(frozen=True)
class Admission:
    """Which names a service lets through from the root files and the shell."""

    mode: str
    rules: tuple[EnvRule, ...]

    def negated(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self._by_kind[0])

    def listed(self, name: str) -> bool:
        _, names, globs = self._by_kind
        return name in names or any(fnmatch.fnmatchcase(name, glob) for glob in globs)

    @functools.cached_property
    def _by_kind(self) -> tuple[tuple[str, ...], frozenset[str], tuple[str, ...]]:
        """(negations, names listed or set, globs): asked once per shell variable and
        service, so a name is looked up in a set rather than matched against each rule."""
        rules = self.rules
        return (
            tuple(rule.name for rule in rules if rule.kind == "negate"),
            frozenset(rule.name for rule in rules if rule.kind in ("pass", "set")),
            tuple(rule.name for rule in rules if rule.kind == "glob"),
        )

    def admits(self, name: str) -> bool:
        if self.negated(name):
            return False
        return self.mode == "loose" or self.listed(name) or is_system_basic(name)

    def reason_dropped(self, name: str) -> str:
        negation = next(
            (r for r in self.rules if r.kind == "negate" and fnmatch.fnmatchcase(name, r.name)),
            None,
        )
        if negation is not None:
            return f"excluded by '!{negation.name}' at {negation.location}"
        return "strict mode: not listed in any `env`"


def is_system_basic(name: str) -> bool:
    return name in SYSTEM_BASICS or name.startswith(SYSTEM_BASIC_PREFIXES)


def admission(project: Project, service: Service) -> Admission:
    return Admission(project.env_mode, (*project.env, *service.env))


def resolve_project(
    project: Project, shell: Mapping[str, str], cli: Mapping[str, str]
) -> ProjectEnv:
    """Every service's environment with provenance, and every problem found on the way."""
    files: dict[Path, EnvFile] = {}
    problems: dict[tuple[object, ...], Problem] = {}

    def read(path: Path, display: str) -> EnvFile:
        if path not in files:
            files[path] = read_env_file(path, display)
        return files[path]

    root_files = [read(ref.path, ref.display) for ref in project.env_files]
    root_paths = {ref.path for ref in project.env_files}
    # One (immutable) Source per shell variable, shared by every service.
    shell_sources = {name: Source("shell", "shell", value) for name, value in shell.items()}
    services = {}
    for service in project.services.values():
        # A service at the repo root shares the root files: they stay filtered.
        own_files = [
            read(ref.path, ref.display) for ref in service.env_files if ref.path not in root_paths
        ]
        resolver = _ServiceResolver(project, service, shell, cli, shell_sources)
        services[service.name] = resolver.resolve(root_files, own_files)
        for problem in resolver.problems:
            problems.setdefault((problem.location, problem.message), problem)
    for ref in (*project.env_files, *(r for s in project.services.values() for r in s.env_files)):
        env_file = files.get(ref.path)
        if ref.explicit and env_file is not None and not env_file.exists:
            problem = _missing_file(ref.display, ref.location)
            problems.setdefault((problem.location, problem.message), problem)
    for env_file in files.values():
        for problem in env_file.problems:
            problems.setdefault((problem.location, problem.message), problem)
    ordered = sorted(problems.values(), key=_problem_order)
    return ProjectEnv(services, ordered, tuple(files), files, shell)


def _line_of(location: Location) -> str:
    """`devstack.yaml:14`: provenance names a line; columns only clutter a table."""
    return str(Location(location.file, location.line))


def _problem_order(problem: Problem) -> tuple[int, Location]:
    return (0 if problem.severity == "error" else 1, problem.location or Location(""))


def _missing_file(display: str, where: Location | None) -> Problem:
    return Problem(
        f"env file {display} does not exist",
        where,
        f"create {display}, or remove it from env_files",
        code="missing-env-file",
    )


class _ServiceResolver:
    """Builds one service's environment layer by layer, recording provenance."""

    def __init__(
        self,
        project: Project,
        service: Service,
        shell: Mapping[str, str],
        cli: Mapping[str, str],
        shell_sources: Mapping[str, Source],
    ) -> None:
        self.project = project
        self.service = service
        self.shell = shell
        self.shell_sources = shell_sources
        self.cli = cli
        self.admission = admission(project, service)
        self.candidates: dict[str, list[tuple[Source, bool]]] = {}
        self.context: dict[str, Source] = {}  # everything defined so far, for ${NAME}
        self.problems: list[Problem] = []

    def resolve(self, root_files: Iterable[EnvFile], own_files: Iterable[EnvFile]) -> ServiceEnv:
        admits, negated = self.admission.admits, self.admission.negated
        for env_file in root_files:
            self.add_file(env_file, "root-file", admits)
        for env_file in own_files:
            self.add_file(env_file, "service-file", lambda name: not negated(name))
        for name, source in self.shell_sources.items():
            self.offer(name, source, admits(name))
        self.add_config_values()
        for name, value in self.cli.items():
            self.offer(name, Source("cli", "--env", value), True)
        return self.result()

    def add_file(self, env_file: EnvFile, kind: SourceKind, admits: Callable[[str], bool]) -> None:
        for entry in env_file.entries:
            source = Source(kind, str(entry.location), entry.value, entry.location)
            if entry.interpolate:
                source = self.interpolated(source, entry.name)
            self.offer(entry.name, source, admits(entry.name))

    def add_config_values(self) -> None:
        service, negated = self.service, self.admission.negated
        if service.port is not None:
            where = Location(self.project.display_path(self.project.config_path))
            label = f"{_line_of(service.location)} (port: {service.port})"
            self.offer("PORT", Source("port", label, str(service.port), where), True)
        for rule in (*self.project.env, *service.env):
            if rule.kind == "set" and rule.value is not None:
                source = Source("config", _line_of(rule.location), rule.value, rule.location)
                source = self.interpolated(source, rule.name)
                self.offer(rule.name, source, not negated(rule.name))

    def offer(self, name: str, source: Source, admitted: bool) -> None:
        self.candidates.setdefault(name, []).append((source, admitted))
        if source.kind != "shell":
            self.context[name] = source

    def lookup(self, name: str) -> str | None:
        if name in self.context:
            return self.context[name].value
        return self.shell.get(name)

    def interpolated(self, source: Source, owner: str) -> Source:
        """`source` with its value expanded, and a problem for each thing that went wrong."""
        raw, where = source.value, source.location
        if "$" not in raw:
            return source  # most values: nothing to expand
        try:
            expansion = interpolate(raw, self.lookup)
        except InvalidTemplate as error:
            secret = is_secret(owner, self.project.vars)  # the bad part could show it
            self.problems.append(_invalid_interpolation(error, owner, where, secret))
            return source
        secret = is_secret(owner, self.project.vars)
        for reference in expansion.undefined:
            self.problems.append(_undefined(reference, owner, where, self.known_names(), secret))
        for missing in expansion.missing:
            message = expand(missing.reference.word, self.shown_lookup).value
            self.problems.append(_missing(missing, message, owner, where))
        if not expansion.used:
            return dataclasses.replace(source, value=expansion.value)
        uses = tuple(
            Use(name, self.context.get(name) or self.shell_sources.get(name))
            for name in expansion.used
        )
        return dataclasses.replace(source, value=expansion.value, written=raw, uses=uses)

    def shown_lookup(self, name: str) -> str | None:
        """`lookup` as a message may show it: secrets masked."""
        value = self.lookup(name)
        return None if value is None else masked(name, value, self.project.vars)

    def known_names(self) -> set[str]:
        return set(self.context) | set(self.shell)

    def result(self) -> ServiceEnv:
        env = ServiceEnv(self.service.name)
        for name, offered in self.candidates.items():
            admitted = [source for source, ok in offered if ok]
            if admitted:
                winner, *lower = reversed(admitted)
                env.variables[name] = Variable(name, winner.value, winner, tuple(lower))
                env.values[name] = winner.value
            elif any(source.kind != "shell" for source, _ in offered):
                sources = tuple(source for source, _ in offered)
                env.dropped[name] = Dropped(name, sources, self.admission.reason_dropped(name))
        return env


# -- the problems an interpolation reports ----------------------------------------------

WHY_STRICTER = "unlike compose, devstack does not take an undefined name as empty"


def _undefined(
    reference: Reference, owner: str, where: Location | None, known: set[str], secret: bool
) -> Problem:
    name = reference.name
    if secret and not reference.braced:
        # In a secret, `pa$word` is more likely part of the value than a reference.
        return Problem(
            f"{owner} uses an undefined $NAME at character {reference.offset + 1}",
            where,
            "for a literal $ in a secret, write $$ or single-quote the value in the env file",
            code="undefined-variable",
        )
    hint = (
        f"define {name} in an env file or the shell, write ${{{name}:-default}}, "
        f"or ${{{name}-}} to allow it unset ({WHY_STRICTER})"
    )
    if not reference.braced:
        hint = f"for a literal $, write $$ (${reference}); or " + hint
    close = closest_names(name, known)
    if close:
        hint = f"did you mean {', '.join(close)}? Or " + hint
    return Problem(
        f"{owner} uses {reference}, which is not defined", where, hint, code="undefined-variable"
    )


def _missing(missing: Missing, message: str, owner: str, where: Location | None) -> Problem:
    name = missing.reference.name
    shown = dataclasses.replace(missing, message=message)  # secrets masked
    empty = " with a value that is not empty" if missing.reference.operator == ":?" else ""
    return Problem(
        f"{owner}: {shown}",
        where,
        f"define {name}{empty} in an env file or the shell",
        code="required-variable",
    )


def _invalid_interpolation(
    error: InvalidTemplate, owner: str, where: Location | None, secret: bool
) -> Problem:
    what = f"at character {error.offset + 1}" if secret else f"`{error.snippet}`"
    hint = (
        "write $$ for a literal $; interpolations are $NAME, ${NAME}, ${NAME:-default}, "
        "${NAME-default}, ${NAME:+alt}, ${NAME+alt}, ${NAME:?message}, ${NAME?message}"
    )
    if error.reason == UNCLOSED:
        hint = "in an env file, ` #` starts a comment unless the value is quoted; or " + hint
    return Problem(
        f"{owner}: invalid interpolation {what}: {error.reason}",
        where,
        hint,
        code="invalid-interpolation",
    )
